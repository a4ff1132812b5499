"""What the outbox's one extra INSERT costs the IPN intake's write: the first-notification
statement (payments/first_notification.py) with and without its outbox event, in one process,
interleaved in blocks so that drift in the machine's load falls on both alike.

    createdb -h 127.0.0.1 -U postgres pgp_bench_outbox
    .venv/bin/python benchmarks/outbox_insert_cost.py --database-url postgres://postgres@127.0.0.1:5432/pgp_bench_outbox

It migrates the named database and adds payments to it (give it its own). Each write is its own
autocommit statement, as the intake runs it. Prints the median, p95 and mean of each.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--blocks", type=int, default=20, help="blocks of each kind, alternating")
    parser.add_argument("--block-size", type=int, default=100)
    args = parser.parse_args()
    os.environ.update(DJANGO_SETTINGS_MODULE="pgp_project.settings.test", DATABASE_URL=args.database_url)
    import django

    django.setup()
    from decimal import Decimal

    from django.core.management import call_command

    from payments.events import payment_payload
    from payments.first_notification import write_first_notification
    from payments.models import Client, Payment, PaymentEvent, PaymentStatus
    from payments.routing import plan_routing

    call_command("migrate", verbosity=0)
    Client.objects.get_or_create(
        external_id="-100outbox",
        defaults={
            "name": "outbox bench",
            "payout_strategy": "threshold",
            "payout_threshold_usd": Decimal(1_000_000),
            "payout_currency": "usdt",
            "payout_network": "eth",
            "wallet_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        },
    )

    def one(payment_id: int, with_outbox: bool) -> float:
        payment = Payment(
            provider_payment_id=payment_id,
            status=PaymentStatus.FINISHED,
            order_id="PGP-7|-100outbox",
            price_amount=Decimal("19.99"),
            price_currency="usd",
            pay_currency="eth",
            outcome_amount=Decimal("0.00612345"),
            outcome_currency="eth",
            raw_payload={},
        )
        plan = plan_routing(payment)
        event = PaymentEvent(
            provider_payment_id=payment_id,
            reported_status="finished",
            outcome="applied",
            reason="first notification",
            signature_valid=True,
            body="{}",
            body_sha256="0" * 64,
            body_size=2,
        )
        started = time.perf_counter()
        outbox = ("payment.received", payment_payload(payment)) if with_outbox else None
        write_first_notification(payment, plan.accumulation, event, outbox)
        return time.perf_counter() - started

    first = (
        Payment.objects.order_by("-provider_payment_id").values_list("provider_payment_id", flat=True).first() or 0
    ) + 1
    taken: dict[bool, list[float]] = {False: [], True: []}
    n = first
    for block in range(args.blocks * 2):
        with_outbox = block % 2 == 1 if (block // 2) % 2 == 0 else block % 2 == 0  # ABBA order
        for _ in range(args.block_size):
            taken[with_outbox].append(one(n, with_outbox))
            n += 1

    def summary(samples: list[float]) -> dict[str, float]:
        ordered = sorted(samples)
        return {
            "median_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(0.95 * len(ordered))] * 1000, 3),
            "mean_ms": round(statistics.mean(ordered) * 1000, 3),
        }

    print(
        json.dumps(
            {
                "writes_each": len(taken[True]),
                "without_outbox": summary(taken[False]),
                "with_outbox": summary(taken[True]),
                "loadavg": Path("/proc/loadavg").read_text().split()[:3],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
