from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator's console: the overview, the needs-attention queue, reconciliation, statements
    and metrics. It reads every domain app and owns no money: the top of the production layers."""

    name = "console"
    verbose_name = "Operator console"
