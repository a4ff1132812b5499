"""The sandbox ChangeNOW HTTP server: API v2 under /v2/, test controls under /sandbox/.

Runs in background threads of the calling process (pytest fixtures) or in the foreground of the
`sandbox_changenow` management command. Binds to loopback only.

API v2 requests carry the key in the `x-changenow-api-key` header, and too many of them are
answered 429, as ChangeNOW's API v2 documentation describes under "Authentication" and its "Rate
limits" (https://documenter.getpostman.com/view/8180765/SVfTPnM8); the Retry-After the sandbox adds (a fault a test
switches on) is HTTP's, which the adapter honours.
"""

import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standins.sandbox_changenow import jsonio
from standins.sandbox_changenow.api import ApiError, ChangeNowApi
from standins.sandbox_changenow.assets import DEFAULT_USD_PRICES
from standins.sandbox_changenow.chain import SandboxChain
from standins.sandbox_changenow.exchanges import ExchangeStore
from standins.sandbox_changenow.faults import Faults, FaultSpecError
from standins.sandbox_changenow.pricing import Pricing
from standins.sandbox_changenow.watcher import ExchangeWatcher, LifecycleTiming

logger = logging.getLogger("standins.sandbox_changenow")

MAX_BODY_BYTES = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class SandboxConfig:
    rpc_url: str
    usdt_address: str
    treasury_private_key: str
    api_key: str
    eth_usd: Decimal = Decimal("3000")
    fee_percent: Decimal = Decimal("0.5")
    min_amount_usd: Decimal = Decimal("5")
    # What /v2/exchange/range answers as maxAmount, in USD worth of the asset sent (ChangeNOW sets
    # one per pair for the fixed-rate flow). High by default, so that only a test that lowers it
    # (the `max_amount_usd` setting) meets it: some move millions through the sandbox.
    max_amount_usd: Decimal | None = Decimal("100000000")
    rate_id_ttl_seconds: int = 300
    timing: LifecycleTiming = field(default_factory=LifecycleTiming)

    def pricing(self) -> Pricing:
        return Pricing(
            usd_prices={**DEFAULT_USD_PRICES, "eth": self.eth_usd},
            fee_percent=self.fee_percent,
            min_amount_usd=self.min_amount_usd,
            max_amount_usd=self.max_amount_usd,
        )

    def __repr__(self) -> str:  # the treasury key and the API key must never reach a log line
        return f"SandboxConfig(rpc_url={self.rpc_url!r}, usdt_address={self.usdt_address!r}, eth_usd={self.eth_usd})"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class SandboxChangeNow:
    """A ChangeNOW stand-in on loopback, watching the local chain for deposits."""

    def __init__(self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the sandbox listens on loopback only")
        if not config.api_key:
            raise ValueError("the sandbox needs a non-empty API key")
        self.config = config
        self.faults = Faults()
        self.store = ExchangeStore()
        self.api = ChangeNowApi(self.store, self.faults, config.pricing(), config.rate_id_ttl_seconds)
        self._host, self._port = host, port
        self._server: _SandboxHTTPServer | None = None
        self._server_thread: threading.Thread | None = None
        self._watcher: ExchangeWatcher | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        address, port = self._server.server_address[:2]
        host = str(address)  # an IP literal: always text for AF_INET/AF_INET6 sockets
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def start(self) -> str:
        """Start the watcher and the HTTP server in background threads; returns the base URL."""
        chain = SandboxChain(self.config.rpc_url, self.config.usdt_address, self.config.treasury_private_key)
        chain_id = chain.check_ready()
        self._watcher = ExchangeWatcher(self.store, chain, self.config.timing)
        self._watcher.start()
        self._server = _SandboxHTTPServer((self._host, self._port), self)
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-changenow-http", daemon=True
        )
        self._server_thread.start()
        logger.info("sandbox ChangeNOW on %s (chain %s at %s)", self.base_url, chain_id, self.config.rpc_url)
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=10)
        if self._watcher is not None:
            self._watcher.stop()
        self._server = self._server_thread = self._watcher = None

    def __enter__(self) -> "SandboxChangeNow":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def exchanges(self) -> list[dict[str, Any]]:
        """Every exchange as by-id shows it, plus what only the sandbox knows: the outcome it was
        set up for, the contactEmail it was created with, and the payout it really sent."""
        with self.store.lock:
            return [
                {
                    **exchange.status_json(),
                    "sandboxOutcome": exchange.outcome,
                    "sandboxContactEmail": exchange.contact_email,
                    "sandboxAmountSent": exchange.amount_to,
                    "sandboxPayoutHash": exchange.payout_hash,
                }
                for exchange in self.store.all()
            ]

    # --- request routing (called from the HTTP handler threads) ------------------------------

    def handle(self, method: str, path: str, query: Mapping[str, str], body: bytes, api_key: str | None) -> Reply:
        if path.startswith("/sandbox/"):
            return self._handle_control(method, path, body)
        if not path.startswith("/v2/"):
            raise ApiError(404, "not_found", f"no such endpoint: {path}")
        if not api_key or not hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
            raise ApiError(401, "unauthorized", "Invalid or missing x-changenow-api-key")
        delay = self.faults.take_delay(path)
        if delay:
            time.sleep(float(delay))  # a duration, not money
        injected = self.faults.take_error(path)
        if injected is not None and injected.status == 429:
            return Reply(
                429,
                {"error": "too_many_requests", "message": "Rate limit exceeded (sandbox fault)"},
                {"Retry-After": str(injected.retry_after)},
            )
        if injected is not None and injected.status == 400:
            return Reply(400, {"error": injected.error, "message": f"{injected.error} (sandbox fault)"})
        if injected is not None:
            return Reply(
                injected.status, {"error": "internal_error", "message": "Internal server error (sandbox fault)"}
            )
        return Reply(200, self._route_api(method, path, query, body))

    def _route_api(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Any:
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/v2/exchange/min-amount"): lambda: self.api.min_amount(query),
            ("GET", "/v2/exchange/range"): lambda: self.api.exchange_range(query),
            ("GET", "/v2/exchange/estimated-amount"): lambda: self.api.estimated_amount(query),
            ("POST", "/v2/exchange"): lambda: self.api.create_exchange(_parse_json(body)),
            ("GET", "/v2/exchange/by-id"): lambda: self.api.exchange_by_id(query),
            ("GET", "/v2/validate/address"): lambda: self.api.validate_address(query),
        }
        return _dispatch(routes, method, path)

    def _handle_control(self, method: str, path: str, body: bytes) -> Reply:
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("POST", "/sandbox/faults"): lambda: self._configure_faults(body),
            ("GET", "/sandbox/faults"): self.faults.snapshot,
            ("POST", "/sandbox/reset"): self._reset_faults,
            ("GET", "/sandbox/exchanges"): lambda: {"count": len(self.store.all()), "exchanges": self.exchanges()},
        }
        return Reply(200, _dispatch(routes, method, path))

    def _configure_faults(self, body: bytes) -> dict[str, Any]:
        try:
            self.faults.configure(_parse_json(body))
        except FaultSpecError as error:
            raise ApiError(400, "not_valid_params", str(error)) from error
        snapshot = self.faults.snapshot()
        logger.info("sandbox faults now %s", snapshot)
        return snapshot

    def _reset_faults(self) -> dict[str, Any]:
        self.faults.reset()
        logger.info("sandbox faults cleared")
        return self.faults.snapshot()


def _dispatch(routes: Mapping[tuple[str, str], Callable[[], Any]], method: str, path: str) -> Any:
    handler = routes.get((method, path))
    if handler is None:
        if any(route_path == path for _, route_path in routes):
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        raise ApiError(404, "not_found", f"no such endpoint: {path}")
    return handler()


def _parse_json(body: bytes) -> Any:
    try:
        return jsonio.loads(body or b"null")
    except ValueError as error:
        raise ApiError(400, "not_valid_params", "the body is not valid JSON") from error


class _SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a request stalled by a `slow` fault must not hold up stop()

    def __init__(self, address: tuple[str, int], app: SandboxChangeNow) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _SandboxHTTPServer
    server_version = "ChangeNowSandbox/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            reply = self.server.app.handle(method, path, query, body, self.headers.get("x-changenow-api-key"))
        except ApiError as error:
            reply = Reply(error.status, error.body())
        except Exception:
            logger.exception("sandbox request %s %s failed", method, path)
            reply = Reply(500, {"error": "internal_error", "message": "Internal server error"})
        self._send(reply)
        logger.info("%s %s -> %d (%.0f ms)", method, self.path, reply.status, (time.monotonic() - started) * 1000)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        payload = jsonio.dumps(reply.body)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            logger.info("client went away before the answer to %s", self.path)  # e.g. it timed out

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _serve logs one line per request, with its duration

    def log_error(self, format: str, *args: Any) -> None:
        logger.warning("sandbox http: " + format, *args)
