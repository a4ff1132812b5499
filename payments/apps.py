from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Clients, NOWPayments IPN intake, payments, payout accumulation and fees."""

    name = "payments"

    def ready(self) -> None:
        from pgp_project.operations.attention import register_attention_counter

        from .attention import payments_needing_attention
        from .money_controls import register_client_money_controls

        register_attention_counter(payments_needing_attention)
        register_client_money_controls()
