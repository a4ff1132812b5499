from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    """Client payouts (payout_batches) and host payments (on-chain sends from the hot wallet)."""

    name = "payouts"
