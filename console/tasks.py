import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from .reconciliation import default_range, reconcile

logger = logging.getLogger(__name__)

RECONCILE_PREVIOUS_DAY_TASK = "console.reconcile_previous_day"


@shared_task(name=RECONCILE_PREVIOUS_DAY_TASK)
def reconcile_previous_day() -> int:
    """Beat job (daily): reconcile the previous whole day; a discrepancy is stored and alerted."""
    with job_heartbeat(RECONCILE_PREVIOUS_DAY_TASK):
        start, end = default_range()
        run = reconcile(start=start, end=end, triggered_by="beat")
        return run.pk
