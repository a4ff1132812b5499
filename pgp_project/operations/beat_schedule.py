"""The default periodic schedule, written once into django-celery-beat's tables.

Operators own the schedule afterwards (edit, disable, change the interval in the admin): an
existing entry is never overwritten, so running migrate again keeps their changes.
"""

import json
import logging
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefaultJob:
    name: str
    task: str
    every_seconds: int
    description: str


def default_jobs() -> list[DefaultJob]:
    return [
        DefaultJob(
            name="Micro-batch conversion check",
            task="batching.check_threshold",
            every_seconds=settings.PGP_CONVERSION_CHECK_SECONDS,
            description="Converts pending ETH to USDT once pending net USD passes the threshold.",
        ),
        DefaultJob(
            name="Client payout check",
            task="payouts.check_client_payouts",
            every_seconds=settings.PGP_CLIENT_PAYOUT_CHECK_SECONDS,
            description="Pays each client whose converted USDT passed the client's threshold.",
        ),
        DefaultJob(
            name="Recovery sweep",
            task="operations.recovery_sweep",
            every_seconds=settings.PGP_RECOVERY_SWEEP_SECONDS,
            description="Re-drives overdue batches and host payments; moves expired ones to review.",
        ),
    ]


def ensure_default_schedule(**kwargs: object) -> None:
    """post_migrate hook: create each missing default periodic task; leave existing ones alone."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for job in default_jobs():
        if PeriodicTask.objects.filter(name=job.name).exists():
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
