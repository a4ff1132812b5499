import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from .hot_wallet import refresh_hot_wallet_snapshots
from .reconciliation import default_range, reconcile

logger = logging.getLogger(__name__)

REFRESH_HOT_WALLET_TASK = "console.refresh_hot_wallet"
RECONCILE_PREVIOUS_DAY_TASK = "console.reconcile_previous_day"


@shared_task(name=REFRESH_HOT_WALLET_TASK, soft_time_limit=60, time_limit=90)
def refresh_hot_wallet() -> None:
    """Beat job: the hot wallet's balances and the fee rate on every chain, for the overview
    (which never asks a node itself)."""
    with job_heartbeat(REFRESH_HOT_WALLET_TASK):
        for snapshot in refresh_hot_wallet_snapshots():
            logger.info("hot wallet on %s: %s", snapshot.chain, snapshot.last_error or f"as of {snapshot.fetched_at}")


@shared_task(name=RECONCILE_PREVIOUS_DAY_TASK)
def reconcile_previous_day() -> int:
    """Beat job (daily): reconcile the previous whole day; a discrepancy is stored and alerted."""
    with job_heartbeat(RECONCILE_PREVIOUS_DAY_TASK):
        start, end = default_range()
        run = reconcile(start=start, end=end, triggered_by="beat")
        return run.pk
