import logging

from celery import shared_task

from .services import job_heartbeat

logger = logging.getLogger(__name__)


@shared_task(name="operations.recovery_sweep")
def recovery_sweep() -> None:
    """Re-drives overdue batches and host payments (the flows arrive with the next issues)."""
    with job_heartbeat("operations.recovery_sweep"):
        logger.info("recovery sweep ran: no batch flows are wired yet")
