from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Clients, NOWPayments IPN intake, payments, payout accumulation and fees."""

    name = "payments"
