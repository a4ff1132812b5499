"""The default periodic schedule, written once into django-celery-beat's tables.

Each app registers its periodic jobs from `AppConfig.ready` (the kernel knows none of them). The
post_migrate hook creates the missing ones; operators own the schedule afterwards (edit,
disable, change the interval in the admin): an existing entry is never overwritten, so running
migrate again keeps their changes.

A money job (`money_job=True`: one whose absence or delay lets money move unchecked or leaves
it stuck) is a money control: disabling, re-timing or redirecting its periodic task needs a
second person (`money_jobs`). Every periodic task that runs a money job's task is guarded,
whatever its name, so a rename changes nothing.
"""

import json
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefaultJob:
    name: str
    task: str
    every_seconds: int
    description: str
    money_job: bool = False


_DEFAULT_JOBS: dict[str, DefaultJob] = {}


def register_default_job(job: DefaultJob) -> None:
    _DEFAULT_JOBS[job.name] = job


def default_jobs() -> list[DefaultJob]:
    return list(_DEFAULT_JOBS.values())


def money_job_tasks() -> frozenset[str]:
    """The Celery task names of the money jobs."""
    return frozenset(job.task for job in _DEFAULT_JOBS.values() if job.money_job)


def ensure_default_schedule(**kwargs: object) -> None:
    """post_migrate hook: create each missing default periodic task; leave existing ones alone.
    A job counts as present when a periodic task has its name or runs its task: a renamed job
    is not created a second time, and nothing disabled or re-timed is ever overwritten."""
    from django.db.models import Q
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for job in default_jobs():
        if PeriodicTask.objects.filter(Q(name=job.name) | Q(task=job.task)).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(every=job.every_seconds, period=IntervalSchedule.SECONDS)
        _, created = PeriodicTask.objects.get_or_create(
            name=job.name,
            defaults={
                "task": job.task,
                "interval": interval,
                "description": job.description,
                "kwargs": json.dumps({}),
            },
        )
        if created:
            logger.info("created periodic task %r every %ss", job.name, job.every_seconds)
