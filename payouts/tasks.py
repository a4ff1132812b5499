import logging

from celery import shared_task

from pgp_project.operations.scheduling import run_flow_step
from pgp_project.operations.services import job_heartbeat

from . import client_payouts, merging
from .host_payments.machine import ADVANCE_HOST_PAYMENT_TASK
from .registration import HOST_PAYMENT_FLOW_NAME

logger = logging.getLogger(__name__)


@shared_task(name=client_payouts.CHECK_CLIENT_PAYOUTS_TASK)
def check_client_payouts() -> None:
    """Beat job: open a payout batch for each client whose balance passed its threshold."""
    with job_heartbeat(client_payouts.CHECK_CLIENT_PAYOUTS_TASK):
        merged = merging.merge_waiting_instant_payouts()
        created = client_payouts.check_client_payouts()
        logger.info(
            "client payout check: %s payout batch(es) opened %s, %s merged %s",
            len(created),
            created,
            len(merged),
            merged,
        )


@shared_task(bind=True, name=client_payouts.ADVANCE_PAYOUT_TASK, max_retries=10)
def advance_payout(self, batch_id: int) -> None:
    """Run the next step of one client payout; transient failures retry with backoff."""
    run_flow_step(self, client_payouts.PAYOUT_FLOW.kind, batch_id)


@shared_task(bind=True, name=ADVANCE_HOST_PAYMENT_TASK, max_retries=10)
def advance_host_payment(self, host_payment_id: int) -> None:
    """Sign, broadcast and confirm one host payment, from whatever state it is in."""
    run_flow_step(self, HOST_PAYMENT_FLOW_NAME, host_payment_id)
