import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from .idempotency import prune_idempotency_records

logger = logging.getLogger(__name__)

PRUNE_IDEMPOTENCY_KEYS_TASK = "gateway_api.prune_idempotency_keys"


@shared_task(name=PRUNE_IDEMPOTENCY_KEYS_TASK)
def prune_idempotency_keys() -> None:
    """Beat job: forget the stored answers of Idempotency-Keys past their 24 hours."""
    with job_heartbeat(PRUNE_IDEMPOTENCY_KEYS_TASK):
        logger.info("pruned %s idempotency records", prune_idempotency_records())
