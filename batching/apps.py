from django.apps import AppConfig
from django.conf import settings


class BatchingConfig(AppConfig):
    """Micro-batch ETH -> USDT conversion: threshold check, exchange, distribution."""

    name = "batching"

    def ready(self) -> None:
        from payouts.exchange_batches.registration import register
        from pgp_project.operations.alerts import register_alerts
        from pgp_project.operations.beat_schedule import DefaultJob, register_default_job

        from .alerts import BATCHING_ALERTS
        from .conversion import CHECK_THRESHOLD_TASK, CONVERSION_FLOW
        from .events import register_conversion_events

        register_alerts(*BATCHING_ALERTS)
        register(CONVERSION_FLOW)
        register_conversion_events()
        register_default_job(
            DefaultJob(
                name="Micro-batch conversion check",
                task=CHECK_THRESHOLD_TASK,
                every_seconds=settings.PGP_CONVERSION_CHECK_SECONDS,
                description="Converts pending ETH to USDT once pending net USD passes the threshold.",
                money_job=True,  # off or late, payments wait unconverted
            )
        )
