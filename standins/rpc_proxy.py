"""A JSON-RPC proxy in front of the local chain that can swallow broadcasts: the crash test's
fault point, injected from the stand-in side instead of living in the signing path.

Every call is forwarded to the node unchanged, except that while `hold_broadcasts()` is on an
`eth_sendRawTransaction` is held: it never reaches the node and its caller waits, as if the
network stalled between our signing commit and the node. The test kills the worker right there.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

BROADCAST_METHOD = "eth_sendRawTransaction"
UPSTREAM_TIMEOUT_SECONDS = 10.0


class RpcProxy:
    def __init__(self, upstream_url: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream_url = upstream_url
        self._held = threading.Event()  # set: broadcasts are held
        self._released = threading.Event()  # set when the proxy stops: held callers get an error
        self._lock = threading.Lock()
        self.held_broadcasts: list[str] = []  # the raw transactions that never reached the node
        self._server = _ProxyServer((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="rpc-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def hold_broadcasts(self) -> None:
        self._held.set()

    def forward_broadcasts(self) -> None:
        self._held.clear()

    def held_count(self) -> int:
        with self._lock:
            return len(self.held_broadcasts)

    def _maybe_hold(self, call: Any) -> bool:
        calls = call if isinstance(call, list) else [call]
        broadcasts = [c for c in calls if isinstance(c, dict) and c.get("method") == BROADCAST_METHOD]
        if not broadcasts or not self._held.is_set():
            return False
        with self._lock:
            self.held_broadcasts += [str((c.get("params") or [""])[0]) for c in broadcasts]
        self._released.wait()  # until the proxy stops; the transaction is dropped either way
        return True


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: RpcProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            call = json.loads(body or b"null")
        except ValueError:
            call = None
        if self.server.proxy._maybe_hold(call):
            self._reply(503, b'{"error": "held by the test proxy"}')
            return
        upstream = requests.post(
            self.server.proxy.upstream_url,
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=UPSTREAM_TIMEOUT_SECONDS,
        )
        self._reply(upstream.status_code, upstream.content)

    def _reply(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller was killed while held: that is the point

    def log_message(self, format: str, *args: Any) -> None:
        pass
