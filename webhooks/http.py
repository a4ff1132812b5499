"""The HTTP side of a delivery: one POST with timeouts, a capped read of the answer, and no
connection to a private, loopback, link-local or otherwise non-public address unless
PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS allows it (the demo and the tests).

The address is checked on the connected socket itself (its peer), not only when the URL is
saved: a name that resolves to a public address at save time and to 127.0.0.1 at send time (DNS
rebinding) is refused before a byte of the request is written. Proxies from the environment are
ignored (they would make the peer the proxy), and redirects are not followed.
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class RefusedDestination(requests.exceptions.ConnectionError):
    """The destination's address is not a public one (and private ones are not allowed)."""


NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def address_refused(address: str) -> str | None:
    """Why connecting to this IP address is refused, or None when it is allowed."""
    if settings.PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS:
        return None
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone id is not part of the address
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one is that IPv4 address: mapped (::ffff:a.b.c.d),
        # 6to4 (2002:AABB:CCDD::) and NAT64 (64:ff9b::a.b.c.d) reach it through a gateway.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in NAT64_PREFIX:
            ip = ipaddress.IPv4Address(ip.packed[-4:])  # its last 32 bits
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if ip.is_private:
        return f"{address} is a private address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return f"{address} is not a public address"
    return None


def check_destination_url(url: str) -> None:
    """At save: the URL is http(s) with a host, and a literal IP host must be allowed (a name is
    checked when it is connected to, whatever it resolves to then). Raises ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise ValueError("the URL must not carry credentials")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    why = address_refused(parts.hostname)
    if why:
        raise ValueError(f"refused destination: {why}")


def _check_peer(sock: socket.socket) -> None:
    peer = sock.getpeername()[0]
    why = address_refused(peer)
    if why:
        sock.close()
        raise RefusedDestination(f"refused destination: {why}")


class _CheckedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _CheckedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)  # before the TLS handshake: nothing is sent to a refused address
        return sock


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def new_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the peer we check is the receiver
    adapter = CheckedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no HTTP answer (refused, timeout, connection error)
    excerpt: str  # at most PGP_WEBHOOK_MAX_RESPONSE_BYTES of the body, as text
    error: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST once; never raises for what the receiver or the network does."""
    started = time.monotonic()
    timeout = (settings.PGP_WEBHOOK_CONNECT_TIMEOUT_SECONDS, settings.PGP_WEBHOOK_READ_TIMEOUT_SECONDS)
    cap = settings.PGP_WEBHOOK_MAX_RESPONSE_BYTES
    try:
        with new_session() as session:
            response = session.post(
                url,
                data=body,
                headers={
                    "content-type": "application/json",
                    "user-agent": "pgp-webhooks/1",
                    "accept-encoding": "identity",  # the capped read reads bytes as sent
                    **headers,
                },
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            )
            try:
                # Read at most `cap` bytes of the answer, whatever it claims or sends.
                raw = response.raw.read(cap, decode_content=False) or b""
            finally:
                response.close()
    except requests.RequestException as failure:
        return Answer(None, "", _describe(failure), _ms_since(started))
    excerpt = raw[:cap].decode("utf-8", errors="replace")
    refusal = "" if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return Answer(response.status_code, excerpt, refusal, _ms_since(started))


def _describe(error: Exception) -> str:
    text = str(error)
    if "refused destination" in text:
        return text[text.index("refused destination") :][:500]
    return f"{type(error).__name__}: {text}"[:500]


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
