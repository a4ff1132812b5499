from django.apps import AppConfig
from django.conf import settings


class WebhooksConfig(AppConfig):
    """Signed event webhooks: endpoints, the dispatcher from the outbox, deliveries and retries."""

    name = "webhooks"

    def ready(self) -> None:
        from pgp_project.operations.alerts import register_alerts
        from pgp_project.operations.attention import register_attention_source
        from pgp_project.operations.beat_schedule import DefaultJob, register_default_job
        from pgp_project.outbox.events import register_listener

        from . import services, tasks
        from .alerts import WEBHOOKS_ALERTS
        from .attention import disabled_endpoints_source

        register_alerts(*WEBHOOKS_ALERTS)
        register_attention_source(disabled_endpoints_source())
        register_listener(tasks.enqueue_dispatch)
        services.set_sender(tasks.enqueue_send)
        register_default_job(
            DefaultJob(
                name="Webhook sweep",
                task=tasks.SWEEP_TASK,
                every_seconds=settings.PGP_WEBHOOK_SWEEP_SECONDS,
                description="Dispatches outbox events to webhook endpoints and sends due deliveries (retries).",
            )
        )
        register_default_job(
            DefaultJob(
                name="Prune webhook history",
                task=tasks.PRUNE_TASK,
                every_seconds=24 * 3600,
                description="Forgets delivered webhooks and their events after PGP_WEBHOOK_RETENTION_DAYS.",
            )
        )
