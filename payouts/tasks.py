import logging

from celery import shared_task

from pgp_project.operations.scheduling import run_flow_step
from pgp_project.operations.services import job_heartbeat

from . import client_payouts, host_payments
from .models import HostPayment, PayoutBatch

logger = logging.getLogger(__name__)


@shared_task(name="payouts.check_client_payouts")
def check_client_payouts() -> None:
    """Beat job: open a payout batch for each client whose balance passed its threshold."""
    with job_heartbeat("payouts.check_client_payouts"):
        created = client_payouts.check_client_payouts()
        logger.info("client payout check: %s payout batch(es) opened %s", len(created), created)


@shared_task(bind=True, name="payouts.advance_payout", max_retries=10)
def advance_payout(self, batch_id: int) -> None:
    """Run the next step of one client payout; transient failures retry with backoff."""
    run_flow_step(self, PayoutBatch, batch_id, client_payouts.advance_payout)


@shared_task(bind=True, name="payouts.advance_host_payment", max_retries=10)
def advance_host_payment(self, host_payment_id: int) -> None:
    """Sign, broadcast and confirm one host payment, from whatever state it is in."""
    run_flow_step(self, HostPayment, host_payment_id, host_payments.advance_host_payment)
