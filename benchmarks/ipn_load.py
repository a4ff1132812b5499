"""IPN load benchmark: the IPN endpoint against a bare one-INSERT Django endpoint,
both in the same gunicorn (production settings and gunicorn.conf.py, persistent connections),
then the IPN latency at a fixed rate, open loop.

    .venv/bin/python benchmarks/ipn_load.py --database-url postgres://postgres@127.0.0.1:5432/pgp_bench_web

- Throughput: wrk (`apt-get install wrk`), closed loop, WEB_CONCURRENCY x GUNICORN_THREADS
  connections (what a buffering proxy in front would hold), rounds interleaved bare / IPN. Every
  IPN is a distinct payment (pre-signed bodies, each sent once), a `finished` payment to a
  threshold client, so each one takes the whole first-notification path: INSERT, routing, the
  accumulation row, the event. Only 200 answers count.
- Latency: 100 requests a second for 30 s, each sent at its scheduled time whether or not the
  previous ones have been answered (no coordinated omission: latency runs from the scheduled
  time), one connection per request as through the proxy; p50/p95/p99/max.

`--project-root` runs the server from another checkout (e.g. a `git worktree` of an older
commit) with this benchmark's bare endpoint and settings, to compare before and after. The
named database is migrated and its payments are deleted: give the benchmark its own.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from integrations.nowpayments_signature import sign  # noqa: E402

IPN_PATH = "/webhooks/nowpayments/"
BARE_PATH = "/bench/bare/"
CLIENT_ID = "-100bench"

SETUP = f"""
from decimal import Decimal
from django.db import connection
from payments.models import Client
with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS bench_bare (id bigserial PRIMARY KEY, body text NOT NULL)")
    cursor.execute("TRUNCATE bench_bare, payout_accumulation, payments_paymentevent, payments_payment CASCADE")
Client.objects.update_or_create(external_id={CLIENT_ID!r}, defaults=dict(
    name="bench", payout_strategy="threshold", payout_threshold_usd=Decimal("1000000"),
    payout_currency="usdt", payout_network="eth", wallet_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
"""
COUNT = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT (SELECT count(*) FROM payments_payment), (SELECT count(*) FROM payout_accumulation),"
                   " (SELECT count(*) FROM bench_bare)")
    print("COUNTS", *cursor.fetchone())
"""


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the throughput runs: apt-get install wrk")
    project = Path(args.project_root).resolve()
    port = free_port()
    env = server_env(args, port)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=project, env=env, check=True)
    subprocess.run([*manage, "shell", "-c", SETUP], cwd=project, env=env, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        # One file per round, distinct payment ids: a later round must not replay the first's
        # bodies (it would measure duplicates, which are cheaper).
        # bodies[0]: the warm-up round's.
        bodies = [Path(tmp) / f"bodies-{i}.tsv" for i in range(args.rounds + 1)]
        for i, path in enumerate(bodies):
            write_signed_bodies(path, args.bodies, env["NOWPAYMENTS_IPN_SECRET"], first_id=1_000_000 * (i + 1))
        server = start_gunicorn(project, env, port)
        try:
            report = run(args, port, bodies, env["NOWPAYMENTS_IPN_SECRET"])
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    counts = subprocess.run([*manage, "shell", "-c", COUNT], cwd=project, env=env, check=True, capture_output=True)
    found = re.search(r"COUNTS (\d+) (\d+) (\d+)", counts.stdout.decode())
    assert found, counts.stdout
    names = ("payments", "accumulation_rows", "bare_rows")
    report["database"] = dict(zip(names, map(int, found.groups()), strict=True))
    report["project_root"] = str(project)
    print(json.dumps(report, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database of the benchmark's own (payments wiped)")
    parser.add_argument("--project-root", default=str(ROOT), help="the checkout to serve (default: this one)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=0, help="wrk connections (default workers x threads)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per endpoint")
    parser.add_argument(
        "--warmup-seconds", type=int, default=3, help="a first round per endpoint, not counted (0: none)"
    )
    parser.add_argument("--bodies", type=int, default=40_000, help="distinct signed IPNs per throughput round")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second of the latency run")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--skip-throughput", action="store_true")
    return parser.parse_args()


def server_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(HERE / "web"),
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "DATABASE_URL": args.database_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "NOWPAYMENTS_IPN_SECRET": secrets.token_urlsafe(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DJANGO_STATIC_ROOT": tempfile.mkdtemp(prefix="pgp-bench-static-"),  # empty: nothing for whitenoise to scan
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(args.workers),
        "GUNICORN_THREADS": str(args.threads),
        "LOG_LEVEL": "ERROR",
    }


def ipn(payment_id: int) -> bytes:
    body = {
        "payment_id": payment_id,
        "payment_status": "finished",
        "price_amount": 19.99,
        "price_currency": "usd",
        "pay_amount": 0.0062,
        "actually_paid": 0.0062,
        "pay_currency": "eth",
        "order_id": f"PGP-7|{CLIENT_ID}",
        "order_description": "Channel subscription",
        "outcome_amount": 0.00612345,
        "outcome_currency": "eth",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def write_signed_bodies(path: Path, count: int, secret: str, first_id: int) -> None:
    with path.open("w") as out:
        for payment_id in range(first_id, first_id + count):
            raw = ipn(payment_id)
            out.write(f"{sign(raw, secret)}\t{raw.decode()}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(project: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [gunicorn, "pgp_project.wsgi"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return server
        time.sleep(0.2)
    server.kill()
    sys.exit("gunicorn did not start")


def run(args: argparse.Namespace, port: int, bodies: list[Path], secret: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "workers": args.workers,
        "threads": args.threads,
        "loadavg_before": loadavg(),
    }
    connections = args.connections or args.workers * args.threads
    # Warm every thread's database connection on both endpoints.
    asyncio.run(fixed_rate(port, BARE_PATH, [ipn(1) for _ in range(50)], 200.0, secret=None))
    if not args.skip_throughput:
        if args.warmup_seconds:
            # Every thread's first requests on each endpoint (its connection's prepared statements,
            # modules imported on first use, PostgreSQL's caches): in a round of their own.
            report["warmup_ok_per_second"] = {
                name: wrk(port, path, bodies[0], connections, args.warmup_seconds)["ok_per_second"]
                for name, path in (("bare", BARE_PATH), ("ipn", IPN_PATH))
            }
        rounds: dict[str, list[dict[str, float]]] = {"bare": [], "ipn": []}
        for i in range(args.rounds):
            for name, path in (("bare", BARE_PATH), ("ipn", IPN_PATH)):
                rounds[name].append(wrk(port, path, bodies[i + 1], connections, args.duration))
        report["throughput"] = {
            name: {
                "ok_per_second_median": statistics.median(r["ok_per_second"] for r in runs),
                "rounds": runs,
            }
            for name, runs in rounds.items()
        }
        report["throughput"]["ipn_over_bare"] = round(
            report["throughput"]["ipn"]["ok_per_second_median"] / report["throughput"]["bare"]["ok_per_second_median"],
            3,
        )
    first_id = 100_000_000
    count = int(args.rate * args.latency_seconds)
    latency_bodies = [ipn(payment_id) for payment_id in range(first_id, first_id + count)]
    report["latency"] = asyncio.run(fixed_rate(port, IPN_PATH, latency_bodies, args.rate, secret=secret))
    report["latency"]["rate_per_second"] = args.rate
    report["loadavg_after"] = loadavg()
    return report


def wrk(port: int, path: str, bodies: Path, connections: int, duration: int) -> dict[str, Any]:
    threads = 2
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "20s",
            "-s",
            str(HERE / "web" / "cycle_bodies.lua"),
            f"http://127.0.0.1:{port}{path}",
            "--",
            str(bodies),
            str(threads),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"wrk failed: {result.stdout}{result.stderr}")
    out = result.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert total, out
    seconds = float(total[2]) / (1000 if total[3] == "ms" else 1)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = int(total[1])
    failed = int(non_ok[1]) if non_ok else 0
    return {
        "requests": requests,
        "non_2xx": failed,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "ok_per_second": round((requests - failed) / seconds, 1),
        "loadavg": loadavg(),
    }


async def fixed_rate(port: int, path: str, bodies: list[bytes], rate: float, secret: str | None) -> dict[str, Any]:
    """Open loop: request i is sent at start + i / rate, whatever happened to the others."""
    start = time.monotonic() + 0.2
    tasks = []
    for i, raw in enumerate(bodies):
        headers = {"x-nowpayments-sig": sign(raw, secret)} if secret else {}
        tasks.append(asyncio.create_task(one_request(port, path, raw, headers, start + i / rate)))
    results = await asyncio.gather(*tasks)
    latencies = sorted(ms for _, ms in results)
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "requests": len(results),
        "statuses": statuses,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1),
    }


async def one_request(port: int, path: str, raw: bytes, headers: dict[str, str], at: float) -> tuple[int, float]:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Length: {len(raw)}\r\nConnection: close\r\n\r\n"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(head.encode() + raw)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        status = int(response.split(b" ", 2)[1]) if response else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    return status, (time.monotonic() - at) * 1000


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


if __name__ == "__main__":
    main()
