"""API balance benchmark: GET /api/v1/clients/<id>/balance/ with a gateway key, at a fixed rate,
open loop, against gunicorn with production settings (gunicorn.conf.py, persistent connections,
the Redis cache the rate limits count in), then its closed-loop throughput with wrk.

    .venv/bin/python benchmarks/api_balance.py --database-url postgres://postgres@127.0.0.1:5432/pgp_bench_api

- Latency: `--rate` requests a second (default 100) for `--latency-seconds` (30), each sent at
  its scheduled time whether or not the previous ones were answered (no coordinated omission:
  latency runs from the scheduled time), one connection per request as through the proxy;
  p50/p95/p99/max. The target: p99 under 50 ms at 100 requests a second.
- Reference: the same run against the client's own page (`/api/v1/clients/<id>/`: the key, the
  rate limit and one row, no aggregate), so a busy machine's share of the figures shows.
- Throughput: wrk (`apt-get install wrk`), closed loop, workers x threads connections.

The client has `--rows` accumulation rows (its balance is an aggregate over them) among those of
`--other-clients` other clients. The named database is migrated and its payments, accumulation
rows and API keys are deleted: give the benchmark its own.
"""

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from production_server import free_port, loadavg, production_env, start_gunicorn  # noqa: E402

CLIENT_ID = "-100apibench"

SETUP = """
import sys
from decimal import Decimal
from django.db import connection
from django.utils import timezone
from payments.models import Client, Payment, PayoutAccumulation
from gateway_api.keys import create_api_key
from gateway_api.models import ApiKey

rows, others, CLIENT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with connection.cursor() as cursor:
    cursor.execute("TRUNCATE gateway_api_idempotencyrecord, gateway_api_apikey, payout_accumulation,"
                   " payments_paymentevent, payments_payment CASCADE")
wallet = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
def client(external_id):
    return Client.objects.update_or_create(external_id=external_id, defaults=dict(
        name=external_id, payout_strategy="threshold", payout_threshold_usd=Decimal("1000000"),
        payout_currency="usdt", payout_network="eth", wallet_address=wallet))[0]
clients = [client(CLIENT), *(client(f"-100apibench{n}") for n in range(others))]
payment_id = 500_000_000
for owner in clients:
    count = rows if owner.external_id == CLIENT else rows // 10
    payments = Payment.objects.bulk_create(
        Payment(provider_payment_id=payment_id + n, status="finished", order_id=f"PGP-1|{owner.external_id}",
                price_amount=Decimal("10.00"), price_currency="usd", outcome_amount=Decimal("0.003"),
                outcome_currency="eth", client=owner, raw_payload={})
        for n in range(count)
    )
    payment_id += count
    PayoutAccumulation.objects.bulk_create(
        PayoutAccumulation(payment=payment, client=owner, user_id=1, status="pending", gross_usd=Decimal("10.00"),
                           fee_percent=Decimal("3.00"), fee_usd=Decimal("0.30"), net_usd=Decimal("9.70"),
                           source_asset="eth", source_currency="eth", source_amount=Decimal("0.003"),
                           wallet_address=wallet, payout_currency="usdt", payout_network="eth")
        for payment in payments
    )
with connection.cursor() as cursor:
    cursor.execute("ANALYZE payout_accumulation")  # as autovacuum would have, after the bulk insert
key, secret = create_api_key(name="benchmark", kind="gateway")
print("BENCH", clients[0].pk, secret)
"""


def main() -> None:
    args = parse_args()
    port = free_port()
    env = server_env(args, port)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); exec({SETUP!r})",
            str(args.rows),
            str(args.others),
            CLIENT_ID,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    found = re.search(r"BENCH (\d+) (\S+)", setup.stdout)
    assert found, setup.stdout + setup.stderr
    client_pk, secret = int(found[1]), found[2]
    path = f"/api/v1/clients/{client_pk}/balance/"
    server = start_gunicorn(ROOT, env, port)
    try:
        report = run(args, port, path, secret, reference=f"/api/v1/clients/{client_pk}/")
    finally:
        server.terminate()
        server.wait(timeout=30)
    report["rows"] = args.rows
    print(json.dumps(report, indent=2))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database of the benchmark's own (payments wiped)")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/12", help="the shared cache (PGP_CACHE_URL)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rows", type=int, default=5000, help="the client's accumulation rows")
    parser.add_argument("--others", type=int, default=20, help="other clients, each with a tenth as many rows")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second of the latency run")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip the client page's run")
    parser.add_argument("--duration", type=int, default=10, help="seconds of the wrk throughput run (0: none)")
    return parser.parse_args()


def server_env(args: argparse.Namespace, port: int) -> dict[str, str]:
    return production_env(
        database_url=args.database_url,
        cache_url=args.cache_url,
        port=port,
        workers=args.workers,
        threads=args.threads,
        # Above what the run sends: the benchmark measures the answer, not the limit's 429s.
        PGP_API_RATE="1000000/min",
    )


def run(args: argparse.Namespace, port: int, path: str, secret: str, reference: str) -> dict[str, Any]:
    report: dict[str, Any] = {"workers": args.workers, "threads": args.threads, "loadavg_before": loadavg()}
    headers = {"Authorization": f"Api-Key {secret}"}
    # Warm every thread's connection, imports and PostgreSQL's caches; not counted.
    asyncio.run(fixed_rate(port, path, headers, 200.0, 400))
    count = int(args.rate * args.latency_seconds)
    report["latency"] = asyncio.run(fixed_rate(port, path, headers, args.rate, count))
    report["latency"]["rate_per_second"] = args.rate
    if args.reference:
        report["reference_latency"] = asyncio.run(fixed_rate(port, reference, headers, args.rate, count))
    if args.duration and shutil.which("wrk"):
        report["throughput"] = wrk(port, path, secret, args.workers * args.threads, args.duration)
    report["loadavg_after"] = loadavg()
    return report


async def fixed_rate(port: int, path: str, headers: dict[str, str], rate: float, count: int) -> dict[str, Any]:
    """Open loop: request i is sent at start + i / rate, whatever happened to the others."""
    start = time.monotonic() + 0.2
    tasks = [asyncio.create_task(one_request(port, path, headers, start + i / rate)) for i in range(count)]
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


async def one_request(port: int, path: str, headers: dict[str, str], at: float) -> tuple[int, float]:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += "Connection: close\r\n\r\n"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
        writer.write(head.encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        status = int(response.split(b" ", 2)[1]) if response else 0
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    return status, (time.monotonic() - at) * 1000


def wrk(port: int, path: str, secret: str, connections: int, duration: int) -> dict[str, Any]:
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-H",
            f"Authorization: Api-Key {secret}",
            f"http://127.0.0.1:{port}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    out = result.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    assert total, out
    seconds = float(total[2]) / (1000 if total[3] == "ms" else 1)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = int(non_ok[1]) if non_ok else 0
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return {
        "connections": connections,
        "requests": int(total[1]),
        "non_2xx": failed,
        "ok_per_second": round((int(total[1]) - failed) / seconds, 1),
        "p99": f"{p99[1]}{p99[2]}" if p99 else None,
    }


if __name__ == "__main__":
    main()
