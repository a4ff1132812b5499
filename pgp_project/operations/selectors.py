from .models import RuntimeSettings


def get_runtime_settings() -> RuntimeSettings:
    """The current runtime settings; created with defaults on first use.

    Read fresh on every call (one indexed query) so an admin edit takes effect without restart.
    """
    settings_row, _ = RuntimeSettings.objects.get_or_create(pk=RuntimeSettings.SINGLETON_ID)
    return settings_row
