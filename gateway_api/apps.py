from django.apps import AppConfig
from django.conf import settings


class GatewayApiConfig(AppConfig):
    """The gateway's REST API (/api/v1/): API keys, clients, balances, payments, payouts and
    statements. It reads every domain app and writes only through their services; it moves no
    money and confirms nothing: the top of the production layers, beside the console."""

    name = "gateway_api"
    verbose_name = "Gateway API"

    def ready(self) -> None:
        from pgp_project.operations.beat_schedule import DefaultJob, register_default_job
        from pgp_project.operations.pending_changes import register_people_behind_account

        from . import schema  # noqa: F401 - registers the API key's security scheme with drf-spectacular
        from .keys import key_creators
        from .tasks import PRUNE_IDEMPOTENCY_KEYS_TASK

        # A change requested with a key is the key's creator's too: they may not confirm it, nor
        # approve a payout to the wallet it set (the two-person rule holds through keys).
        register_people_behind_account(key_creators)

        register_default_job(
            DefaultJob(
                name="Prune API idempotency keys",
                task=PRUNE_IDEMPOTENCY_KEYS_TASK,
                every_seconds=settings.PGP_API_IDEMPOTENCY_PRUNE_SECONDS,
                description="Deletes the stored answers of API requests' Idempotency-Keys older than "
                "PGP_API_IDEMPOTENCY_HOURS.",
            )
        )
