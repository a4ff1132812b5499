import logging

from celery import shared_task

from pgp_project.operations.services import job_heartbeat

from . import retention

logger = logging.getLogger(__name__)


@shared_task(name=retention.PRUNE_REJECTED_IPNS_TASK)
def prune_rejected_ipn_events() -> None:
    """Beat job: forget refused IPNs past their retention period."""
    with job_heartbeat(retention.PRUNE_REJECTED_IPNS_TASK):
        deleted = retention.prune_rejected_ipn_events()
        logger.info("pruned %s refused IPN records", deleted)
