import logging

from celery import shared_task

from pgp_project.operations.scheduling import note_retry, retry_countdown
from pgp_project.operations.services import job_heartbeat
from pgp_project.operations.transient_errors import TRANSIENT_ERRORS, retry_after_of

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
    try:
        conversion.advance_conversion(conversion_id)
    except BatchConversion.DoesNotExist:
        logger.warning("BatchConversion #%s no longer exists; nothing to do", conversion_id)
    except TRANSIENT_ERRORS as exc:
        countdown = retry_countdown(self.request.retries, retry_after_of(exc))
        note_retry(BatchConversion, conversion_id, exc, countdown)
        logger.warning("conversion #%s: %s; retry in %.1fs", conversion_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
