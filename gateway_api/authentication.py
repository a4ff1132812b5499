"""`Authorization: Api-Key <prefix>.<secret>`: the key's row by its prefix, its hash checked,
refused when revoked or expired. The request then acts as the key's own user (`ApiKeyUser`)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .keys import acting_user
from .models import ApiKey

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, secret = header.partition(" ")
        if keyword != KEYWORD:
            return None  # no key: the permission check answers 401
        secret = secret.strip()
        prefix, dot, _ = secret.partition(".")
        key = ApiKey.objects.select_related("user").filter(prefix=prefix).first() if dot else None
        if key is None or not key.is_valid(secret):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if key.revoked:
            raise exceptions.AuthenticationFailed("This API key is revoked.")
        if key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        _touch(key)
        return acting_user(key), key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD  # so a request without a key gets 401 with WWW-Authenticate, not 403


def _touch(key: ApiKey) -> None:
    """Record the last use, at most once a resolution period: a conditional UPDATE, so concurrent
    requests write it once and reads do not each write a row."""
    now = timezone.now()
    resolution = timedelta(seconds=settings.PGP_API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if key.last_used_at is not None and key.last_used_at > now - resolution:
        return
    stale = ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gt=now - resolution)
    if stale.update(last_used_at=now):
        key.last_used_at = now
