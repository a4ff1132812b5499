"""A money job's periodic task is a money control. Disabling the daily reconciliation, the
reference-price refresh (which turns the intake's price check off), the recovery sweep or the
payout and conversion checks, re-timing them or pointing them at another task is requested by
one staff member (`operations.change_money_jobs`) and applies once a second one confirms it
(`pending_changes`). Which jobs are money jobs is declared where each app registers its default
job (`DefaultJob(money_job=True)`); every periodic task that runs such a task is guarded.

A money job's task row cannot be deleted, and a schedule row a money job runs on (or is
requested to run on) cannot be edited or deleted: either would re-time the job by one person.
Other periodic tasks change as before.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model, QuerySet
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)

from .beat_schedule import money_job_tasks
from .models import PendingChange, PendingChangeStatus
from .pending_changes import register_guarded_fields, request_change

MONEY_JOB_SUBJECT = "periodic_task"
CHANGE_MONEY_JOBS = "operations.change_money_jobs"

# The foreign key of a periodic task to each kind of schedule row.
SCHEDULE_FIELDS: dict[type[Model], str] = {
    IntervalSchedule: "interval",
    CrontabSchedule: "crontab",
    SolarSchedule: "solar",
    ClockedSchedule: "clocked",
}

# Whether it runs, when, what, with which arguments and where its message goes: everything but
# its name and description (a rename changes nothing: the task name decides what is guarded).
MONEY_JOB_GUARDED_FIELDS = {
    name: CHANGE_MONEY_JOBS
    for name in (
        "enabled",
        *SCHEDULE_FIELDS.values(),
        "one_off",
        "start_time",
        "expires",
        "expire_seconds",
        "task",
        "args",
        "kwargs",
        "queue",
        "exchange",
        "routing_key",
        "priority",
        "headers",
    )
}


def is_money_job(periodic_task: Any) -> bool:
    return bool(periodic_task.task in money_job_tasks())


def money_job_rows() -> QuerySet[PeriodicTask]:
    return PeriodicTask.objects.filter(task__in=money_job_tasks())


def register_money_job_controls() -> None:
    register_guarded_fields(MONEY_JOB_SUBJECT, PeriodicTask, MONEY_JOB_GUARDED_FIELDS, applies_to=is_money_job)


def schedule_runs_a_money_job(schedule: Model) -> bool:
    """Whether a money job runs on this schedule row, or a pending change would make one run on
    it: editing the row then re-times the job without a second person."""
    field_name = SCHEDULE_FIELDS[type(schedule)]
    if money_job_rows().filter(**{f"{field_name}_id": schedule.pk}).exists():
        return True
    return PendingChange.objects.filter(
        subject_type=MONEY_JOB_SUBJECT,
        status=PendingChangeStatus.PENDING,
        **{f"changes__{field_name}__new": str(schedule.pk)},
    ).exists()


@dataclass
class EnabledChange:
    """What a bulk enable, disable or toggle did: the other tasks changed at once, a money job's
    change requested (or refused without the permission)."""

    changed: list[str] = field(default_factory=list)
    requested: list[PendingChange] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def set_enabled(task_ids: Iterable[int], enabled: bool | None, *, user: Any, reason: str) -> EnabledChange:
    """Enable (True), disable (False) or toggle (None) periodic tasks. A task that is not a money
    job changes at once, as django_celery_beat's own actions do; a money job's change becomes a
    pending change for a second person."""
    outcome = EnabledChange()
    may_request = user.has_perm(CHANGE_MONEY_JOBS)
    with transaction.atomic():
        for task in PeriodicTask.objects.select_for_update().filter(pk__in=list(task_ids)).order_by("pk"):
            wanted = (not task.enabled) if enabled is None else enabled
            if wanted == task.enabled:
                continue
            if not is_money_job(task):
                # Like django_celery_beat's actions: a disabled task forgets its last run.
                PeriodicTask.objects.filter(pk=task.pk, enabled=task.enabled).update(
                    enabled=wanted, **({} if wanted else {"last_run_at": None})
                )
                outcome.changed.append(task.name)
            elif not may_request:
                outcome.refused.append(task.name)
            else:
                change = request_change(PeriodicTask, task.pk, {"enabled": wanted}, user=user, reason=reason)
                if change is not None:
                    outcome.requested.append(change)
        if outcome.changed:
            PeriodicTasks.update_changed()  # Beat re-reads the schedule
    return outcome
