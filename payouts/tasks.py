import logging

from celery import shared_task

from pgp_project.operations.scheduling import note_retry, retry_countdown
from pgp_project.operations.services import job_heartbeat
from pgp_project.operations.transient_errors import TRANSIENT_ERRORS, retry_after_of

from . import host_payments
from .models import HostPayment

logger = logging.getLogger(__name__)


@shared_task(name="payouts.check_client_payouts")
def check_client_payouts() -> None:
    """Beat job: open a payout batch for each client whose balance passed its threshold."""
    with job_heartbeat("payouts.check_client_payouts"):
        logger.info("client payout check ran: payout flow not wired yet")


@shared_task(bind=True, name="payouts.advance_host_payment", max_retries=10)
def advance_host_payment(self, host_payment_id: int) -> None:
    """Sign, broadcast and confirm one host payment, from whatever state it is in."""
    try:
        host_payments.advance_host_payment(host_payment_id)
    except HostPayment.DoesNotExist:
        logger.warning("HostPayment #%s no longer exists; nothing to do", host_payment_id)
    except TRANSIENT_ERRORS as exc:
        countdown = retry_countdown(self.request.retries, retry_after_of(exc))
        note_retry(HostPayment, host_payment_id, exc, countdown)
        logger.warning("host payment #%s: %s; retry in %.1fs", host_payment_id, exc, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
