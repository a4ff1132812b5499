"""`manage.py fuzz_ipn --url http://127.0.0.1:8000/webhooks/nowpayments/ --count 3000`: post the
fuzz corpus (standins/ipn_fuzz.py) to a running server and count the answers. Fails when any
answer is a 5xx or the connection breaks. `--secret` is the server's IPN secret, so that a third
of the cases are validly signed and reach the checks behind the signature."""

import collections
import time
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from standins.ipn_fuzz import fuzz_cases


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

    def handle(self, *args: object, **options: Any) -> None:
        secret = options["secret"] or settings.NOWPAYMENTS_IPN_SECRET
        extra_headers = dict(header.split(":", 1) for header in options["header"])
        extra_headers = {name.strip(): value.strip() for name, value in extra_headers.items()}
        by_status: collections.Counter[str] = collections.Counter()
        by_kind_5xx: collections.Counter[str] = collections.Counter()
        started = time.monotonic()
        with requests.Session() as session:
            for case in fuzz_cases(options["count"], secret, options["seed"]):
                headers: dict[str, Any] = {"Content-Type": "application/json", **extra_headers}
                if case.signature is not None:
                    headers["x-nowpayments-sig"] = case.signature
                try:
                    status = str(session.post(options["url"], data=case.body, headers=headers, timeout=30).status_code)
                except requests.exceptions.InvalidHeader:
                    status = "not sendable"  # a header HTTP cannot carry (NUL, leading space): never reaches a server
                except requests.RequestException as error:
                    status = f"error:{type(error).__name__}"
                by_status[status] += 1
                if status.startswith(("5", "error")):
                    by_kind_5xx[case.kind] += 1
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items()))
        self.stdout.write(f"{options['count']} bodies in {elapsed:.1f}s; answers {summary}")
        if by_kind_5xx:
            raise CommandError(f"server errors or broken connections by case kind: {dict(by_kind_5xx)}")
