from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """Clients of outside systems (ChangeNOW, Ethereum, NOWPayments) and their local stand-ins."""

    name = "integrations"
