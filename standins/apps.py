from django.apps import AppConfig


class StandinsConfig(AppConfig):
    """The local stand-ins for outside systems (the anvil chain with TestUSDT, the sandbox
    ChangeNOW, a payment simulator), the demo and the benchmarks. Installed only by
    `settings.local` and `settings.test`: production never installs or imports it."""

    name = "standins"
    verbose_name = "Local stand-ins (demo and tests only)"
