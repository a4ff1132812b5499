from django.apps import AppConfig
from django.conf import settings


class PaymentsConfig(AppConfig):
    """Clients, NOWPayments IPN intake, payments, payout accumulation and fees."""

    name = "payments"

    def ready(self) -> None:
        from integrations.assets import fixed_display_places
        from integrations.exchange.alerts import EXCHANGE_ALERTS
        from pgp_project.money_display import register_fixed_places
        from pgp_project.operations.alerts import register_alerts
        from pgp_project.operations.attention import register_attention_source
        from pgp_project.operations.beat_schedule import DefaultJob, register_default_job

        from .alerts import PAYMENTS_ALERTS
        from .attention import attention_sources
        from .money_controls import register_client_money_controls
        from .reference_prices import REFRESH_REFERENCE_PRICES_TASK
        from .retention import PRUNE_REJECTED_IPNS_TASK

        # The lowest app that knows the asset registry tells the kernel's money display (which
        # may not import it) the places each asset is shown with.
        register_fixed_places(fixed_display_places())
        register_alerts(*PAYMENTS_ALERTS)
        # The exchange adapters are no app of their own; payments is the lowest app using them.
        register_alerts(*EXCHANGE_ALERTS)
        for source in attention_sources():
            register_attention_source(source)
        register_client_money_controls()
        register_default_job(
            DefaultJob(
                name="Prune refused IPN records",
                task=PRUNE_REJECTED_IPNS_TASK,
                every_seconds=settings.PGP_PRUNE_REJECTED_IPNS_SECONDS,
                description="Deletes refused IPN records (hash, size, reason) older than the retention period.",
            )
        )
        register_default_job(
            DefaultJob(
                name="Refresh reference prices",
                task=REFRESH_REFERENCE_PRICES_TASK,
                every_seconds=settings.PGP_REFERENCE_PRICE_SECONDS,
                description="The exchange provider's ETH price, which IPN outcomes are checked against.",
                money_job=True,  # off, the price goes stale and intake stops checking outcomes against it
            )
        )
