"""The client address the login throttle (django-axes) counts failures by.

Behind a reverse proxy every request comes from the proxy's address, so counting by REMOTE_ADDR
would lock everybody out together. X-Forwarded-For, though, is whatever the client wrote, plus
what each proxy appended. So we read it only as far as our own proxies vouch for it: with
PGP_TRUSTED_PROXY_COUNT = N proxies in front, each appending the address it received from, the
client is the N-th address from the right; anything further left was written by the client and is
ignored. With 0 (the default: no proxy) the header is ignored altogether.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip_address(request: HttpRequest) -> str | None:
    remote_addr = request.META.get("REMOTE_ADDR")
    trusted = settings.PGP_TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote_addr
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < trusted:
        # Fewer entries than proxies: a request that did not pass through all of them.
        return remote_addr
    return forwarded[-trusted]
