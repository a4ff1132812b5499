"""What every sandbox exchange shares, whichever provider's API it speaks: the loopback HTTP server,
the watcher that settles exchanges on the local anvil chain, the test controls under /sandbox/,
and the faults a test switches on. A provider's sandbox adds only its API front: its routes, how
it reads the API key, and its error shapes (`SandboxHost.answer_api`, `authorized`, `fault_reply`).

It lives in this package, next to the provider-neutral engine a front drives, where both were first
written for ChangeNOW: the in-memory exchanges (exchanges.py), the chain (chain.py), the lifecycle
(watcher.py, in ChangeNOW's status words, which each front translates into its own), the prices
(pricing.py), the faults (faults.py) and exact-Decimal JSON (jsonio.py). The ChangeNOW front is
server.py and api.py; another provider's front is a package of its own (standins.sandbox_letsexchange).
"""

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standins.sandbox_changenow import jsonio
from standins.sandbox_changenow.chain import SandboxChain
from standins.sandbox_changenow.exchanges import ExchangeStore
from standins.sandbox_changenow.faults import Faults, FaultSpecError, InjectedError
from standins.sandbox_changenow.watcher import ExchangeWatcher, LifecycleTiming

MAX_BODY_BYTES = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    """An answer other than 200, already in the provider's error shape."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply


@dataclass(frozen=True)
class ChainAccess:
    """Where the sandbox watches for deposits and what pays its payouts and refunds. Each sandbox on
    the same chain needs its own treasury: two signers sharing one account would reuse nonces."""

    rpc_url: str
    usdt_address: str
    treasury_private_key: str
    timing: LifecycleTiming

    def __repr__(self) -> str:  # the treasury key must never reach a log line
        return f"ChainAccess(rpc_url={self.rpc_url!r}, usdt_address={self.usdt_address!r})"


class SandboxHost(ABC):
    """A sandbox exchange on loopback; subclasses answer their provider's API."""

    name = "sandbox"  # for thread names and log lines
    server_version = "ExchangeSandbox/1.0"
    # Each front logs under its own name (a benchmark quiets one sandbox's request lines by it).
    logger_name = "standins.sandbox"

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(self.logger_name)

    def __init__(self, chain: ChainAccess, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError("the sandbox listens on loopback only")
        self.chain_access = chain
        self.faults = Faults()
        self.store = ExchangeStore()
        self._host, self._port = host, port
        self._server: _SandboxHTTPServer | None = None
        self._server_thread: threading.Thread | None = None
        self._watcher: ExchangeWatcher | None = None

    # --- what a provider's front supplies ------------------------------------------------------

    @abstractmethod
    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries the sandbox's API key, the way the provider takes it."""

    @abstractmethod
    def unauthorized_reply(self) -> Reply: ...

    @abstractmethod
    def is_api_path(self, path: str) -> bool: ...

    @abstractmethod
    def answer_api(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Reply: ...

    @abstractmethod
    def fault_reply(self, injected: InjectedError) -> Reply:
        """The answer an injected fault (429, 500, refusal) gives, in the provider's shapes."""

    @abstractmethod
    def error_reply(self, status: int, message: str) -> Reply:
        """A plumbing error (not found, bad body, internal error) in the provider's shape."""

    @abstractmethod
    def describe_exchanges(self) -> list[dict[str, Any]]:
        """Every exchange for GET /sandbox/exchanges (the store is locked while this runs)."""

    def extra_controls(self, body: bytes) -> dict[tuple[str, str], Callable[[], Any]]:
        """More /sandbox/ routes a front offers (its prices, say); none by default."""
        return {}

    def on_reset(self) -> None:  # noqa: B027 - a hook a front may fill in, empty by default
        """What POST /sandbox/reset restores besides the faults; nothing by default."""

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running")
        address, port = self._server.server_address[:2]
        host = str(address)  # an IP literal: always text for AF_INET/AF_INET6 sockets
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def start(self) -> str:
        """Start the watcher and the HTTP server in background threads; returns the base URL."""
        access = self.chain_access
        chain = SandboxChain(access.rpc_url, access.usdt_address, access.treasury_private_key)
        chain_id = chain.check_ready()
        self._watcher = ExchangeWatcher(self.store, chain, access.timing)
        self._watcher.start()
        self._server = _SandboxHTTPServer((self._host, self._port), self)
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{self.name}-http", daemon=True
        )
        self._server_thread.start()
        self.log.info("%s on %s (chain %s at %s)", self.name, self.base_url, chain_id, access.rpc_url)
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

    # --- request routing (called from the HTTP handler threads) ---------------------------------

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, headers: Mapping[str, str]
    ) -> Reply:
        if path.startswith("/sandbox/"):
            return self._handle_control(method, path, body)
        if not self.is_api_path(path):
            return self.error_reply(404, f"no such endpoint: {path}")
        if not self.authorized(headers):
            return self.unauthorized_reply()
        delay = self.faults.take_delay(path)
        if delay:
            time.sleep(float(delay))  # a duration, not money
        injected = self.faults.take_error(path)
        if injected is not None:
            return self.fault_reply(injected)
        return self.answer_api(method, path, query, body)

    def _handle_control(self, method: str, path: str, body: bytes) -> Reply:
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("POST", "/sandbox/faults"): lambda: self._configure_faults(body),
            ("GET", "/sandbox/faults"): self.faults.snapshot,
            ("POST", "/sandbox/reset"): self._reset_faults,
            ("GET", "/sandbox/exchanges"): self._listing,
            **self.extra_controls(body),
        }
        handler = routes.get((method, path))
        if handler is None:
            return self.error_reply(404, f"no such endpoint: {method} {path}")
        try:
            return Reply(200, handler())
        except FaultSpecError as error:
            return self.error_reply(400, str(error))

    def _listing(self) -> dict[str, Any]:
        with self.store.lock:
            exchanges = self.describe_exchanges()
        return {"count": len(exchanges), "exchanges": exchanges}

    def _configure_faults(self, body: bytes) -> dict[str, Any]:
        try:
            spec = jsonio.loads(body or b"null")
        except ValueError as error:
            raise FaultSpecError("the body is not valid JSON") from error
        self.faults.configure(spec)
        snapshot = self.faults.snapshot()
        self.log.info("%s faults now %s", self.name, snapshot)
        return snapshot

    def _reset_faults(self) -> dict[str, Any]:
        self.faults.reset()
        self.on_reset()
        self.log.info("%s faults cleared", self.name)
        return self.faults.snapshot()


class _SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a request stalled by a `slow` fault must not hold up stop()

    def __init__(self, address: tuple[str, int], app: SandboxHost) -> None:
        self.app = app
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _SandboxHTTPServer

    @property
    def server_version(self) -> str:  # type: ignore[override]
        return self.server.app.server_version

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {name: values[-1] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        app = self.server.app
        try:
            body = self._read_body()
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = app.handle(method, path, query, body, headers)
        except HttpError as error:
            reply = error.reply
        except Exception:
            app.log.exception("%s request %s %s failed", app.name, method, path)
            reply = app.error_reply(500, "Internal server error")
        self._send(reply)
        app.log.info("%s %s -> %d (%.0f ms)", method, self.path, reply.status, (time.monotonic() - started) * 1000)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise HttpError(self.server.app.error_reply(413, f"the body is over {MAX_BODY_BYTES} bytes"))
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
            self.server.app.log.info("client went away before the answer to %s", self.path)  # e.g. it timed out

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _serve logs one line per request, with its duration

    def log_error(self, format: str, *args: Any) -> None:
        self.server.app.log.warning("sandbox http: " + format, *args)
