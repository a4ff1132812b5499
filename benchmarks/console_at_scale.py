"""The console at scale: every page and endpoint an operator opens, timed over HTTP against
gunicorn with production settings, on a database already seeded (`manage.py seed_scale`).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_scale .venv/bin/python manage.py seed_scale
    .venv/bin/python benchmarks/console_at_scale.py --database-url postgres://postgres@127.0.0.1:5432/pgp_scale

It adds to the database an operator (a superuser, `--username`, logged in through the admin's
login form; PGP_REQUIRE_OTP_FOR_MONEY is off for the run) and a gateway API key, and changes
nothing else. Each page: one warm-up request, then `--runs` (3) timed ones, one after another on
one keep-alive connection, from sending the request to the last byte of the answer; the table
shows the best, the p95 (of 3 runs: the slowest) and the status. A redirect to another page of
the same list (a default filter) is followed and its time counted. Exits non-zero if any answer
is not 2xx. Pages: the overview, every admin changelist (default filters), payments of the last
three days, exact-id searches (payment id, order id, transaction hash, exchange id, address),
a conversion, payout and payment page, the needs-attention queue, host payments,
reconciliation, a client's statement for a year (CSV in the admin, JSON and CSV in the API),
/metrics with its bearer token, /health/, and the gateway API's balance and payments list.
"""

import argparse
import http.client
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from production_server import free_port, loadavg, production_env, start_gunicorn  # noqa: E402

# Run in the project's environment (Django set up on the benchmark's database): the operator and
# the key, and the ids the pages are timed with, as JSON on the last line.
SETUP = """
import json, sys
from datetime import timedelta
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from batching.models import BatchConversion
from gateway_api.keys import create_api_key
from payments.models import Client, Payment
from payouts.models import HostPayment, PayoutBatch
from pgp_project.operations.services import job_heartbeat

HEARTBEAT = "benchmark: console_at_scale"
username, password = sys.argv[1], sys.argv[2]
user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(password)
user.save()
# /health/ answers 200 only when a periodic job ran lately: no Beat runs against a seeded copy,
# so the benchmark records one run of its own (removed again at the end: CLEANUP), and the server
# counts it fresh for the whole run (PGP_BEAT_STALE_AFTER_SECONDS below).
with job_heartbeat(HEARTBEAT):
    pass
_, secret = create_api_key(name=f"console_at_scale {timezone.now():%Y-%m-%d %H:%M}", kind="gateway")
changelists = sorted(
    (str(m._meta.verbose_name_plural), reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist"))
    for m in admin.site._registry
)
payment = Payment.objects.filter(routing_status="routed").order_by("-id").first()
conversion = BatchConversion.objects.filter(status="completed").order_by("-id").first()
payout = PayoutBatch.objects.filter(status="completed", kind="threshold").order_by("-id").first()
host_payment = HostPayment.objects.exclude(tx_hash=None).order_by("-id").first()
# The busiest client: its statement is the longest.
with connection.cursor() as cursor:
    cursor.execute("SELECT client_id FROM payout_accumulation TABLESAMPLE SYSTEM (1) GROUP BY client_id "
                   "ORDER BY count(*) DESC LIMIT 1")
    found = cursor.fetchone()
client = Client.objects.get(pk=found[0]) if found else Client.objects.order_by("id").first()
counts = {}
with connection.cursor() as cursor:
    for table in ("payments_payment", "payments_paymentevent", "payout_accumulation", "batch_conversions",
                  "payout_batches", "payouts_hostpayment", "operations_auditevent", "payments_client"):
        cursor.execute(f"SELECT count(*) FROM {table}")
        counts[table] = cursor.fetchone()[0]
print(json.dumps({
    "secret": secret,
    "changelists": changelists,
    "payment": [payment.pk, payment.provider_payment_id, payment.order_id],
    "conversion": [conversion.pk, conversion.exchange_id],
    "payout": payout.pk,
    "host_payment": [host_payment.tx_hash, host_payment.to_address],
    "client": client.pk,
    "today": timezone.localdate().isoformat(),
    "counts": counts,
}))
"""


CLEANUP = """
from pgp_project.operations.models import JobHeartbeat
JobHeartbeat.objects.filter(job_name="benchmark: console_at_scale").delete()
"""


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    auth: str = "session"  # "session" (the operator), "key" (the gateway API key), "metrics", "none"


@dataclass
class Timing:
    label: str
    best_ms: float
    p95_ms: float
    status: int
    size: int


def main() -> None:
    args = parse_args()
    port = free_port()
    password = secrets.token_urlsafe(16)
    env = production_env(
        database_url=args.database_url,
        cache_url=args.cache_url,
        port=port,
        workers=args.workers,
        threads=args.threads,
        PGP_REQUIRE_OTP_FOR_MONEY="False",
        PGP_METRICS_TOKEN=secrets.token_urlsafe(24),
        PGP_API_RATE="1000000/min",
        PGP_BEAT_STALE_AFTER_SECONDS="86400",
    )
    setup = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); exec({SETUP!r})", args.username, password],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    facts = json.loads(setup.stdout.strip().splitlines()[-1])
    # The admin's pages name their static files through the manifest, as after a deploy.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    server = start_gunicorn(ROOT, env, port)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
        session = login(connection, args.username, password)
        credentials = {
            "session": {"Cookie": session},
            "key": {"Authorization": f"Api-Key {facts['secret']}"},
            "metrics": {"Authorization": f"Bearer {env['PGP_METRICS_TOKEN']}"},
            "none": {},
        }
        before = loadavg()
        timings = [time_page(connection, page, credentials[page.auth], args.runs) for page in pages(facts)]
        after = loadavg()
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); exec({CLEANUP!r})"], cwd=ROOT, env=env, check=True
        )
    print_table(timings, facts["counts"], before, after, args)
    failed = [t for t in timings if not 200 <= t.status < 300]
    if failed:
        sys.exit(f"{len(failed)} answers were not 2xx: " + ", ".join(f"{t.label} ({t.status})" for t in failed))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database seeded with manage.py seed_scale")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/12", help="the shared cache (PGP_CACHE_URL)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each page, after one warm-up")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one answer")
    parser.add_argument("--username", default="console-at-scale")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    return parser.parse_args()


def pages(facts: dict[str, Any]) -> list[Page]:
    payment_pk, provider_payment_id, order_id = facts["payment"]
    conversion_pk, exchange_id = facts["conversion"]
    tx_hash, address = facts["host_payment"]
    client, today = facts["client"], facts["today"]
    year_ago = _days_before(today, 365)
    listed = [Page(f"list: {name}", path) for name, path in facts["changelists"]]
    return [
        Page("overview /admin/", "/admin/"),
        *listed,
        Page(
            "payments, last 3 days",
            "/admin/payments/payment/?" + urlencode({"created_at__range__gte": _days_before(today, 3)}),
        ),
        Page("search: payment id", "/admin/payments/payment/?" + urlencode({"q": provider_payment_id})),
        Page("search: order id", "/admin/payments/payment/?" + urlencode({"q": order_id})),
        Page("search: tx hash", "/admin/payouts/hostpayment/?" + urlencode({"q": tx_hash})),
        Page("search: exchange id", "/admin/batching/batchconversion/?" + urlencode({"q": exchange_id})),
        Page("search: address", "/admin/payouts/hostpayment/?" + urlencode({"q": address})),
        Page("conversion detail", f"/admin/batching/batchconversion/{conversion_pk}/change/"),
        Page("payout detail", f"/admin/payouts/payoutbatch/{facts['payout']}/change/"),
        Page("payment detail", f"/admin/payments/payment/{payment_pk}/change/"),
        Page("needs attention", "/admin/console/attention/"),
        Page("host payments", "/admin/payouts/hostpayment/"),
        Page("reconciliation", "/admin/console/reconciliationrun/"),
        Page(
            "statement, year, CSV (admin)",
            "/admin/console/reconciliationrun/statement/?"
            + urlencode({"client": client, "date_from": year_ago, "date_to": today}),
        ),
        Page(
            "statement, year, JSON (API)",
            f"/api/v1/clients/{client}/statement/?" + urlencode({"start": year_ago, "end": today}),
            "key",
        ),
        Page(
            "statement, year, CSV (API)",
            f"/api/v1/clients/{client}/statement.csv?" + urlencode({"start": year_ago, "end": today}),
            "key",
        ),
        Page("/metrics", "/metrics", "metrics"),
        Page("/health/", "/health/", "none"),
        Page("API: balance", f"/api/v1/clients/{client}/balance/", "key"),
        Page("API: payments list", "/api/v1/payments/", "key"),
    ]


def _days_before(today: str, days: int) -> str:
    from datetime import date, timedelta

    return (date.fromisoformat(today) - timedelta(days=days)).isoformat()


def login(connection: http.client.HTTPConnection, username: str, password: str) -> str:
    """Through the admin's login form, as a person would: the session cookie (sent by hand on
    every request: production marks its cookies Secure, and this is plain HTTP on loopback)."""
    status, headers, body = request(connection, "GET", "/admin/login/", {})
    if b"csrfmiddlewaretoken" not in body:
        sys.exit(f"no login form at /admin/login/ ({status}): {body[:300]!r}")
    cookies = _cookies(headers)
    token = body.split(b'name="csrfmiddlewaretoken" value="', 1)[1].split(b'"', 1)[0].decode()
    form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"})
    status, headers, _ = request(
        connection,
        "POST",
        "/admin/login/",
        {
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://127.0.0.1:{connection.port}/admin/login/",
        },
        form.encode(),
    )
    cookies.update(_cookies(headers))
    if status != 302 or "sessionid" not in cookies:
        sys.exit(f"the admin login failed ({status})")
    return f"sessionid={cookies['sessionid']}"


def _cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            found[key.strip()] = rest.split(";", 1)[0]
    return found


def request(
    connection: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    connection.request(method, path, body=body, headers={"Host": "127.0.0.1", **headers})
    response = connection.getresponse()
    return response.status, response.getheaders(), response.read()


def fetch(connection: http.client.HTTPConnection, page: Page, headers: dict[str, str]) -> tuple[float, int, int]:
    """One GET, following a redirect within the same list (a default filter): ms, status, bytes."""
    started = time.perf_counter()
    status, answer_headers, body = request(connection, "GET", page.path, headers)
    location = dict((k.lower(), v) for k, v in answer_headers).get("location", "")
    if status in (301, 302) and location.split("?", 1)[0] in ("", page.path.split("?", 1)[0]):
        path = location if location.startswith("/") else page.path.split("?", 1)[0] + location
        status, _, body = request(connection, "GET", path, headers)
    return (time.perf_counter() - started) * 1000, status, len(body)


def time_page(connection: http.client.HTTPConnection, page: Page, headers: dict[str, str], runs: int) -> Timing:
    fetch(connection, page, headers)  # warm-up: not counted
    results = [fetch(connection, page, headers) for _ in range(runs)]
    times = sorted(ms for ms, _, _ in results)
    statuses = {status for _, status, _ in results}
    worst_status = max(statuses, key=lambda s: (not 200 <= s < 300, s))
    print(f"  {page.label:<40} {times[0]:9.1f} ms  ({worst_status})", file=sys.stderr, flush=True)
    # p95 of three runs is the slowest of them.
    return Timing(page.label, times[0], _p95(times), worst_status, results[-1][2])


def _p95(sorted_ms: list[float]) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(0.95 * len(sorted_ms)))]


def print_table(
    timings: list[Timing], counts: dict[str, int], before: str, after: str, args: argparse.Namespace
) -> None:
    print(f"gunicorn, production settings: {args.workers} workers x {args.threads} threads; {args.runs} runs each")
    print("rows: " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
    print(f"load average before: {before}")
    print()
    print(f"| {'page':<40} | {'best ms':>9} | {'p95 ms':>9} | status | {'bytes':>9} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 11}|--------|{'-' * 11}|")
    for t in timings:
        print(f"| {t.label:<40} | {t.best_ms:9.1f} | {t.p95_ms:9.1f} | {t.status:>6} | {t.size:>9,} |")
    print()
    print(f"load average after: {after}")
    if args.json:
        print(json.dumps([t.__dict__ for t in timings]))


if __name__ == "__main__":
    main()
