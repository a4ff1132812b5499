"""Error reports (the DEBUG page, the admins' e-mail, Sentry's Django integration) must never carry a
secret: the IPN secret, a hot-wallet key, an API key, or a connection URL with a password.

Django's default filter hides settings by name and only the frame locals a function names in
`@sensitive_variables`. This one also hides connection URLs among the settings, and, in every
frame of the traceback, any local whose name looks secret or whose value contains a configured
secret, whatever the local is called (a key copied into `value`, a signer's `hmac` state...).
"""

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

from .operations.environment_secrets import environment_names, secrets_from_environment

# Shorter values are not secrets worth matching (and would hide innocent locals).
MIN_SECRET_LENGTH = 8
SECRET_NAME = re.compile("API|TOKEN|KEY|SECRET|PASS|SIG|HTTP_COOKIE|URL|PRIVATE|AUTH", flags=re.IGNORECASE)


def configured_secrets() -> list[str]:
    """Every secret value the settings hold, as text and lower-cased without a 0x prefix."""
    found: set[str] = set()
    for name in dir(settings):
        if name.isupper() and SECRET_NAME.search(name):
            for value in _strings(getattr(settings, name, None)):
                if len(value) >= MIN_SECRET_LENGTH and not value.startswith(("http://127.", "http://localhost")):
                    found.add(value.lower().removeprefix("0x"))
    # The chains' keys and node URLs, and the exchange providers' API keys, live in the
    # environment, named by their configuration (`..._env`).
    named = [*environment_names(getattr(settings, "PGP_CHAINS", {}))]
    named += environment_names(getattr(settings, "PGP_EXCHANGES", {}))
    for variable in set(named):
        for value in secrets_from_environment(variable):
            if len(value) >= MIN_SECRET_LENGTH and not value.startswith(("http://127.", "http://localhost")):
                found.add(value.lower().removeprefix("0x"))
    return sorted(found)


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _strings(item)


class SecretHidingReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = SECRET_NAME

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = configured_secrets()
        return [(name, self._hidden_if_secret(name, value, secrets)) for name, value in variables]

    def _hidden_if_secret(self, name: str, value: Any, secrets: list[str]) -> Any:
        if value == self.cleansed_substitute or isinstance(value, HttpRequest):
            return value  # already hidden; a request is cleansed by the reporter itself
        if SECRET_NAME.search(name):
            return self.cleansed_substitute
        try:
            text = (value.hex() if isinstance(value, (bytes, bytearray)) else repr(value)).lower()
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break the report
            return self.cleansed_substitute
        if any(secret in text for secret in secrets):
            return self.cleansed_substitute
        return value
