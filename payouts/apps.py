from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    """Client payouts (payout_batches), host payments (on-chain sends from the hot wallet, with
    a chain adapter per chain) and the exchange-funded batch machinery that conversions share."""

    name = "payouts"

    def ready(self) -> None:
        from .registration import register_payouts

        register_payouts()
