import logging

from celery import shared_task

from .recovery import run_recovery_sweep
from .services import job_heartbeat
from .status_counts import FOLD_STATUS_COUNTS_TASK, fold_status_counts

logger = logging.getLogger(__name__)

RECOVERY_SWEEP_TASK = "operations.recovery_sweep"


@shared_task(name=RECOVERY_SWEEP_TASK)
def recovery_sweep() -> None:
    """Each registered flow re-drives its overdue objects and expires the ones past deadline."""
    with job_heartbeat(RECOVERY_SWEEP_TASK):
        run_recovery_sweep()


@shared_task(name=FOLD_STATUS_COUNTS_TASK)
def fold_status_counts_task() -> None:
    """Fold the rows-by-status changes the counted tables' triggers recorded (status_counts.py)."""
    with job_heartbeat(FOLD_STATUS_COUNTS_TASK):
        fold_status_counts()
