import logging

from celery import shared_task

from pgp_project.operations.scheduling import run_flow_step
from pgp_project.operations.services import job_heartbeat

from . import conversion
from .models import BatchConversion

logger = logging.getLogger(__name__)


@shared_task(name="batching.check_threshold")
def check_threshold() -> None:
    """Beat job: start a micro-batch conversion when pending USD passes the threshold."""
    with job_heartbeat("batching.check_threshold"):
        result = conversion.check_threshold()
        logger.info(
            "threshold check: pending %s USD, threshold %s, conversion %s%s",
            result.pending_net_usd,
            result.threshold_usd,
            result.conversion_id,
            " (another check holds the lock)" if result.skipped_locked else "",
        )


@shared_task(bind=True, name="batching.advance_conversion", max_retries=10)
def advance_conversion(self, conversion_id: int) -> None:
    """Run the next step of one conversion; transient failures retry with backoff."""
    run_flow_step(self, BatchConversion, conversion_id, conversion.advance_conversion)
