import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

logger = logging.getLogger(__name__)


@shared_task(name="payouts.check_client_payouts")
def check_client_payouts() -> None:
    """Beat job: open a payout batch for each client whose balance passed its threshold."""
    with job_heartbeat("payouts.check_client_payouts"):
        logger.info("client payout check ran: payout flow not wired yet")
