"""Webhook lag benchmark: from an event's commit to its verified arrival at a receiver, under
load, through a real Celery worker.

    createdb -h 127.0.0.1 -U postgres pgp_bench_hooks
    .venv/bin/python benchmarks/webhook_lag.py --database-url postgres://postgres@127.0.0.1:5432/pgp_bench_hooks

It migrates the named database (and empties its outbox and webhook tables: give it its own),
starts a receiver on loopback (standins/webhook_receiver.py, which verifies every signature with
the standardwebhooks library) and a `celery worker` on a queue of its own, then commits events at
a fixed rate, each in its own transaction (as a transition would), for the given time. Each
commit enqueues its dispatch; the worker creates the delivery and sends it. The lag of an event
is its arrival at the receiver minus the moment its transaction committed. Prints JSON: p50,
p95, p99 and max lag, how many arrived, the load average.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--rate", type=float, default=50.0, help="events committed a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    queue = f"bench-hooks-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgp_project.settings.test",
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "1",
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from pgp_project.outbox.events import record_event
    from pgp_project.outbox.models import OutboxEvent
    from standins.webhook_receiver import WebhookReceiver
    from webhooks import services

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE webhooks_webhookattempt, webhooks_webhookdelivery, webhooks_webhookendpoint, "
            "outbox_outboxevent CASCADE"
        )
    receiver = WebhookReceiver().start()
    receiver.secret = services.create_endpoint(url=receiver.url, event_types=["*"]).secret
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pgp_project", "worker", "--loglevel=WARNING",
         f"--concurrency={args.concurrency}", "--without-gossip", "--without-mingle", "-Q", queue],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(6)  # the worker's start-up
        committed: dict[int, float] = {}
        interval = 1 / args.rate
        start = time.monotonic()
        count = int(args.rate * args.seconds)
        for n in range(count):
            scheduled = start + n * interval
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with transaction.atomic():
                pk = record_event("payout.completed", ("payout", n + 1), {"amount": "1.000000"})
            committed[pk] = time.time()
        deadline = time.monotonic() + 120
        while len(receiver.ids()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        event_ids = dict(OutboxEvent.objects.filter(pk__in=committed).values_list("event_id", "pk"))
        arrived = {item.webhook_id: item.at for item in reversed(receiver.received)}  # first arrival
        lags = sorted(arrived[eid] - committed[pk] for eid, pk in event_ids.items() if eid in arrived)

        def pct(p: float) -> float:
            return round(lags[min(len(lags) - 1, int(p / 100 * len(lags)))] * 1000, 1) if lags else float("nan")

        print(
            json.dumps(
                {
                    "events": count,
                    "arrived": len(lags),
                    "rate_per_second": args.rate,
                    "worker_processes": args.concurrency,
                    "lag_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": round(lags[-1] * 1000, 1)},
                    "rejected_signatures": len(receiver.rejected),
                    "loadavg": open("/proc/loadavg").read().split()[:3],  # noqa: SIM115
                },
                indent=2,
            )
        )
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        receiver.stop()


if __name__ == "__main__":
    main()
