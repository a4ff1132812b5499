"""`manage.py fuzz_ipn --url http://127.0.0.1:8000/webhooks/nowpayments/ --count 3000`: post the
fuzz corpus (standins/ipn_fuzz.py) to a running server and count the answers. Fails when any
answer is a 5xx or the connection breaks. `--secret` is the server's IPN secret, so that a third
of the cases are validly signed and reach the checks behind the signature.

Ordinary requests go through `requests`; the cases with broken framing (bad chunks, bodies that
stop early) over a raw socket, since no HTTP library sends those. A case whose client goes away
(a reset) has no answer to read: it is counted as "client reset"; nor has one whose headers never
end ("closed unanswered"). What matters for those is the server's log (benchmarks/ipn_fuzz.py
checks it for tracebacks)."""

import collections
import contextlib
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from standins.ipn_fuzz import FuzzCase, ending, families, fuzz_cases, wire_request

# Longer than any server read timeout a stalled case waits for (gunicorn's is 10 s by default).
ANSWER_TIMEOUT = 30


class Command(BaseCommand):
    help = "Post hostile and malformed IPNs to a running server; fail on any 5xx."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True)
        parser.add_argument("--count", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=20261123)
        parser.add_argument("--secret", default=None, help="the server's IPN secret (default: ours)")
        parser.add_argument(
            "--header",
            action="append",
            default=[],
            help="'Name: value' sent with every request, e.g. the Host and X-Forwarded-Proto a proxy would set",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=4,
            help="requests in flight at once (a stalled case holds one for the server's read timeout)",
        )

    def handle(self, *args: object, **options: Any) -> None:
        secret = options["secret"] or settings.NOWPAYMENTS_IPN_SECRET
        extra_headers = dict(header.split(":", 1) for header in options["header"])
        sender = _Sender(options["url"], {name.strip(): value.strip() for name, value in extra_headers.items()})
        by_status: collections.Counter[str] = collections.Counter()
        by_kind_5xx: collections.Counter[str] = collections.Counter()
        by_family: collections.Counter[str] = collections.Counter()
        started = time.monotonic()
        cases = fuzz_cases(options["count"], secret, options["seed"])
        with ThreadPoolExecutor(max_workers=options["concurrency"]) as pool:
            for case, status in pool.map(lambda case: (case, sender.send(case)), cases):
                by_status[status] += 1
                by_family.update(families(case))
                if status.startswith(("5", "error")):
                    by_kind_5xx[f"{case.kind} ({case.framing})"] += 1
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items()))
        self.stdout.write(f"{options['count']} bodies in {elapsed:.1f}s; answers {summary}")
        self.stdout.write("among them: " + ", ".join(f"{family} {n}" for family, n in sorted(by_family.items())))
        if by_kind_5xx:
            raise CommandError(f"server errors or broken connections by case kind: {dict(by_kind_5xx)}")


class _Sender:
    def __init__(self, url: str, extra_headers: dict[str, str]) -> None:
        self.url = url
        self.extra_headers = extra_headers
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path = parts.path or "/"
        self.wire_headers = {"Host": parts.netloc, "Content-Type": "application/json", **extra_headers}
        self.sessions = threading.local()

    def send(self, case: FuzzCase) -> str:
        """The answer's status code as text, or what kept the case from getting one."""
        if case.framing == "content_length":
            return self._post(case)
        try:
            return self._send_raw(case)
        except OSError as error:
            return f"error:{type(error).__name__}"

    def _post(self, case: FuzzCase) -> str:
        if not hasattr(self.sessions, "session"):
            self.sessions.session = requests.Session()
        headers: dict[str, Any] = {"Content-Type": "application/json", **self.extra_headers}
        if case.signature is not None:
            headers["x-nowpayments-sig"] = case.signature
        try:
            response = self.sessions.session.post(self.url, data=case.body, headers=headers, timeout=ANSWER_TIMEOUT)
        except requests.exceptions.InvalidHeader:
            return "not sendable"  # a header HTTP cannot carry (NUL, leading space): never reaches a server
        except requests.RequestException as error:
            return f"error:{type(error).__name__}"
        return str(response.status_code)

    def _send_raw(self, case: FuzzCase) -> str:
        then = ending(case.framing)
        with socket.create_connection(self.address, timeout=ANSWER_TIMEOUT) as sock:
            # The server may answer and close before reading it all (a header it refuses).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(wire_request(case, self.path, self.wire_headers))
            if then == "reset":
                # Close with unsent data discarded: the server sees a reset, not an end of body.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return "client reset"
            if then == "half_close":
                with contextlib.suppress(OSError):  # closed already by the server, which has answered
                    sock.shutdown(socket.SHUT_WR)
            status_line = sock.makefile("rb").readline(200)
        if not status_line and case.framing == "headers_then_stall":
            return "closed unanswered"  # the server gave up on headers that never ended: nothing to answer
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return "error:no answer"
        return parts[1].decode()
