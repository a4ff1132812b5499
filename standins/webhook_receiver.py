"""A small webhook receiver for the demo and the tests: it verifies each delivery's Standard
Webhooks signature with the `standardwebhooks` library (an implementation that is not ours),
records it and, for the demo, prints it.

    receiver = WebhookReceiver(secret="whsec_...")   # or set receiver.secret later
    receiver.start()          # on 127.0.0.1, a free port; receiver.url
    receiver.status = 500     # fault injection: answer 500 (or delay_seconds, body_bytes)
    receiver.stop()           # down: connections are refused until start() again (same port)

    PGP_DEMO_WEBHOOK_SECRET=whsec_... python -m standins.webhook_receiver --port 8702   # on its own
"""

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    body: dict[str, Any]
    at: float


@dataclass
class WebhookReceiver:
    secret: str = ""
    port: int = 0
    echo: bool = False  # print each verified delivery (the demo)
    status: int = 204
    delay_seconds: float = 0.0
    body_bytes: int = 0  # the size of the answer's body
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks"

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> set[str]:
        with self._lock:
            return {item.webhook_id for item in self.received}

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length") or 0)
        raw = request.rfile.read(length)
        with self._lock:
            self.requests += 1
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            body = Webhook(self.secret).verify(raw, headers)
        except WebhookVerificationError as error:
            with self._lock:
                self.rejected.append(str(error))
            self._answer(request, 400, b"bad signature")
            return
        if 200 <= self.status < 300:
            with self._lock:
                self.received.append(Received(headers["webhook-id"], body, time.time()))
            if self.echo:
                print(
                    f"webhook {body['type']} {body['subject']['type']} #{body['subject']['id']} "
                    f"seq {body['sequence']} ({body['id']}): {json.dumps(body['data'])}",
                    flush=True,
                )
        self._answer(request, self.status, b"x" * self.body_bytes)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        try:
            request.send_response(status)
            request.send_header("content-length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass  # the sender hung up (its capped read): nothing to tell it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print verified webhook deliveries.")
    parser.add_argument("--port", type=int, default=8702)
    args = parser.parse_args(argv)
    # From the environment, not the command line: a process list shows arguments to everyone.
    secret = os.environ["PGP_DEMO_WEBHOOK_SECRET"]
    receiver = WebhookReceiver(secret=secret, port=args.port, echo=True).start()
    print(f"webhook receiver on {receiver.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
