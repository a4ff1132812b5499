"""Django error reports must not show connection URLs either: they can carry passwords or API
keys (DATABASE_URL, CELERY_BROKER_URL, ETH_RPC_URL), which the default filter does not hide."""

import re

from django.views.debug import SafeExceptionReporterFilter


class SecretHidingReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile("API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|PRIVATE", flags=re.I)
