import logging

from celery import shared_task

from integrations.exchange.port import ExchangeError
from pgp_project.operations.services import job_heartbeat

from . import reference_prices, retention, unverified_ipns

logger = logging.getLogger(__name__)


@shared_task(name=retention.PRUNE_REJECTED_IPNS_TASK)
def prune_rejected_ipn_events() -> None:
    """Beat job: forget refused IPNs, and the bodies kept aside for replay, past their retention."""
    with job_heartbeat(retention.PRUNE_REJECTED_IPNS_TASK):
        deleted = retention.prune_rejected_ipn_events()
        logger.info("pruned %s refused IPN records", deleted)
        bodies = unverified_ipns.prune_unverified_bodies()
        logger.info("pruned %s kept bodies of refused IPNs", bodies)


@shared_task(name=reference_prices.REFRESH_REFERENCE_PRICES_TASK)
def refresh_reference_prices() -> None:
    """Beat job: the exchange provider's price of ETH, for checking outcomes against invoices."""
    with job_heartbeat(reference_prices.REFRESH_REFERENCE_PRICES_TASK):
        try:
            price = reference_prices.refresh_reference_prices()
        except ExchangeError as error:
            # The next run tries again; a price that goes stale meanwhile is alerted, not silent.
            reference_prices.alert_if_stale(error)
            logger.warning("reference price not refreshed: %s", error)
            return
        logger.info("reference price: %s", price)
