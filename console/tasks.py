import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from .hot_wallet import refresh_hot_wallet_snapshot

logger = logging.getLogger(__name__)

REFRESH_HOT_WALLET_TASK = "console.refresh_hot_wallet"


@shared_task(name=REFRESH_HOT_WALLET_TASK, soft_time_limit=60, time_limit=90)
def refresh_hot_wallet() -> None:
    """Beat job: the hot wallet's balances and the gas price, for the overview (which never asks
    the node itself)."""
    with job_heartbeat(REFRESH_HOT_WALLET_TASK):
        snapshot = refresh_hot_wallet_snapshot()
        logger.info("hot wallet snapshot: %s", snapshot.last_error or f"as of {snapshot.fetched_at}")
