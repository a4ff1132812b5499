import logging

from celery import shared_task

from .recovery import run_recovery_sweep
from .services import job_heartbeat

logger = logging.getLogger(__name__)


@shared_task(name="operations.recovery_sweep")
def recovery_sweep() -> None:
    """Re-drives overdue batches and host payments; expired ones go to review with an alert."""
    with job_heartbeat("operations.recovery_sweep"):
        run_recovery_sweep()
