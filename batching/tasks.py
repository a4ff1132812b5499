import logging

from celery import shared_task

from pgp_project.operations.scheduling import run_flow_step
from pgp_project.operations.services import job_heartbeat

from . import conversion

logger = logging.getLogger(__name__)


@shared_task(name=conversion.CHECK_THRESHOLD_TASK)
def check_threshold() -> None:
    """Beat job: start a micro-batch conversion when pending USD passes the threshold."""
    with job_heartbeat(conversion.CHECK_THRESHOLD_TASK):
        result = conversion.check_threshold()
        logger.info(
            "threshold check: pending %s USD, threshold %s, conversion %s%s%s",
            result.pending_net_usd,
            result.threshold_usd,
            result.conversion_id,
            " (another check holds the lock)" if result.skipped_locked else "",
            f" (waiting: {result.waiting_for})" if result.waiting_for else "",
        )


@shared_task(bind=True, name=conversion.ADVANCE_CONVERSION_TASK, max_retries=10)
def advance_conversion(self, conversion_id: int) -> None:
    """Run the next step of one conversion; transient failures retry with backoff."""
    run_flow_step(self, conversion.CONVERSION_FLOW.kind, conversion_id)
