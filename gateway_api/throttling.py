"""Rate limits per API key (not per address: a gateway calls from a few hosts), counted in the
shared cache so every web worker agrees; past the rate, 429 with Retry-After."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_rate(self) -> str:
        return str(settings.PGP_API_RATE)  # read per request: an override (or a test's) applies at once

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None  # refused by authentication anyway; nothing to count against
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
