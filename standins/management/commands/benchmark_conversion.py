"""Benchmark: claim + distribution of a conversion on PostgreSQL (the goal: "claim and
distribution over 100,000 rows", "peak memory over 1M rows", "time per row from 10k to 1M").
Not a test: prints figures for the release notes.

    createdb -h 127.0.0.1 -U postgres pgp_bench
    DJANGO_SETTINGS_MODULE=pgp_project.settings.local DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_bench \\
        .venv/bin/python manage.py benchmark_conversion --rows 100000 --naive-rows 10000
    # the scaling run: each size in a fresh child process, so peak RSS figures do not mix
    ... manage.py benchmark_conversion --sizes 10000,100000,1000000 --naive-rows 2000

Per phase (claim, distribution) it compares our services (check_threshold's claim and
distribute_conversion) with (a) the same work as one hand-written SQL statement per phase, the
contenders interleaved and the best of --repeat runs kept, and (b) the original system's
approach, one UPDATE and one commit per row (measured on --naive-rows and compared per row). The
hand-written claim decides on the threshold and the exchange minimum, inserts the conversion and
returns the claimed rows' totals, as ours does; the hand-written distribution (window functions:
the leftover units by a rank over the whole batch) runs under the same SET LOCAL settings as ours.
It reports the time per row and the process's peak RSS right after our distribution (ours runs
first in a fresh process, after both contenders' untimed warm-up on 1,000 rows, so the peak is
Django plus the claim and the distribution).

Nothing reaches a broker: the task messages the claim enqueues after commit (the conversion's
first chain step) are counted and dropped, so no benchmark leaves messages in the demo's queue.
"""

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg2
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import override_settings

from batching.conversion import check_threshold
from batching.distribution import distribute_conversion
from batching.models import BatchConversion
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment
from pgp_project.celery import app as celery_app
from pgp_project.operations.selectors import get_runtime_settings
from standins.fixed_price_exchange import MINIMUM_FROM_AMOUNT

AMOUNT_TO = Decimal("123456.789012")
WARM_UP_ROWS = 1_000

# The claim's work in one statement, as ours does it: the threshold and the exchange minimum
# decide, every pending ETH row is claimed for a new conversion, and the totals of the claimed
# rows come back as one row (not one row per claimed row).
HAND_WRITTEN_CLAIM = """
WITH pending AS (
    SELECT count(*) AS n, coalesce(sum(gross_usd), 0) AS gross, coalesce(sum(net_usd), 0) AS net,
           coalesce(sum(source_amount), 0) AS eth
      FROM payout_accumulation WHERE status = 'pending' AND source_asset = 'eth'
), conversion AS (
    INSERT INTO batch_conversions (status, exchange_provider, threshold_usd, total_gross_usd, total_net_usd,
                                   total_eth, row_count, payin_address, exchange_status, payout_tx_hash, review_reason,
                                   last_error, attempts, abandoned_exchange_ids, deadline_at, created_at, updated_at)
    SELECT 'created', 'bench', %(threshold)s, gross, net, eth, n, '', '', '', '', '', 0, '[]'::jsonb,
           now() + interval '6 hours', now(), now()
      FROM pending WHERE n > 0 AND net >= %(threshold)s AND eth >= %(minimum)s
    RETURNING id
), claimed AS (
    UPDATE payout_accumulation SET status = 'swapping', batch_conversion_id = (SELECT id FROM conversion),
           updated_at = now()
     WHERE status = 'pending' AND source_asset = 'eth' AND EXISTS (SELECT FROM conversion)
    RETURNING gross_usd, net_usd, source_amount
)
SELECT (SELECT id FROM conversion), count(*), sum(gross_usd), sum(net_usd), sum(source_amount) FROM claimed
"""
HAND_WRITTEN_DISTRIBUTION = """
WITH weights AS (
    SELECT id, fee_percent, source_amount * 1000000000000000000 AS wei,
           sum(source_amount * 1000000000000000000) OVER () AS total_wei
      FROM payout_accumulation WHERE batch_conversion_id = %(cid)s AND status = 'swapping'
), shares AS (
    SELECT id, fee_percent, div(%(units)s * wei, total_wei) AS base, mod(%(units)s * wei, total_wei) AS rem
      FROM weights
), ranked AS (
    SELECT *, row_number() OVER (ORDER BY rem DESC, id) AS rn, %(units)s - sum(base) OVER () AS leftover FROM shares
), parts AS (
    SELECT id, fee_percent, (base + CASE WHEN rn <= leftover THEN 1 ELSE 0 END) / 1000000.0 AS usdt FROM ranked
)
UPDATE payout_accumulation a
   SET status = 'converted', usdt_amount = p.usdt, fee_usdt = round(p.usdt * p.fee_percent / 100, 6),
       credit_usdt = p.usdt - round(p.usdt * p.fee_percent / 100, 6), converted_at = now(), updated_at = now()
  FROM parts p WHERE a.id = p.id
"""


Phases = dict[str, float]  # seconds per phase: "claim", "distribution"


class Command(BaseCommand):
    help = "Benchmark claim + distribution against hand-written SQL and a per-row update loop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--sizes", default="", help="comma-separated row counts, each in a fresh child process")
        parser.add_argument("--naive-rows", type=int, default=10_000)
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON line of figures")

    def handle(
        self, *args: object, rows: int, sizes: str, naive_rows: int, repeat: int, as_json: bool, **options: object
    ) -> None:
        name = connection.settings_dict["NAME"]
        if not ("bench" in name or name.startswith("test_")):
            raise CommandError("run against a database whose name contains 'bench' (its data is wiped)")
        if sizes:
            for size in (int(size) for size in sizes.split(",")):
                self._report(self._child(size, naive_rows, repeat))
            return
        with self._no_broker() as withheld:
            figures = self._measure(rows, naive_rows, repeat)
        figures["task_messages_withheld"] = len(withheld)
        if as_json:
            self.stdout.write(_json_line(figures))
        else:
            self._report(figures)

    def _measure(self, rows: int, naive_rows: int, repeat: int) -> dict[str, Any]:
        call_command("migrate", verbosity=0)
        runtime = get_runtime_settings()
        runtime.micro_batch_threshold_usd = Decimal("1.00")
        runtime.save()
        # No outside service: the stand-ins' fixed-price exchange answers the minimum check.
        only_fixed_price = {
            name: {**config, "enabled": name == "fixed_price"} for name, config in settings.PGP_EXCHANGES.items()
        }
        with override_settings(PGP_EXCHANGES=only_fixed_price):
            ours: list[Phases] = []
            hand: list[Phases] = []
            rss_before = _peak_rss_mb()
            # Both warmed up first, untimed, on a small batch (a worker is a long-lived process):
            # otherwise the first contender of a fresh process pays its cold start.
            for contender in (self._ours, self._hand_written):
                self._time(min(rows, WARM_UP_ROWS), contender)
            for run in range(repeat):  # interleaved, ours first in a fresh process
                ours.append(self._time(rows, self._ours))
                if run == 0:
                    rss_after = _peak_rss_mb()
                hand.append(self._time(rows, self._hand_written))
            ours_small = min(sum(self._time(naive_rows, self._ours).values()) for _ in range(repeat))
            naive_small = sum(self._time(naive_rows, self._per_row_updates).values())
        best_ours = {phase: min(run[phase] for run in ours) for phase in ("claim", "distribution")}
        best_hand = {phase: min(run[phase] for run in hand) for phase in ("claim", "distribution")}
        return {
            "rows": rows,
            "ours": best_ours,
            "hand_written": best_hand,
            "peak_rss_mb_before": rss_before,
            "peak_rss_mb_after_distribution": rss_after,
            "naive_rows": naive_rows,
            "ours_naive_rows_s": ours_small,
            "per_row_updates_s": naive_small,
            "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        }

    def _report(self, f: dict[str, Any]) -> None:
        rows, ours, hand = f["rows"], f["ours"], f["hand_written"]
        ours_total, hand_total = sum(ours.values()), sum(hand.values())
        for phase in ("claim", "distribution"):
            self.stdout.write(
                f"rows={rows} {phase:>12}: ours {ours[phase]:.3f}s, hand-written SQL {hand[phase]:.3f}s, "
                f"ratio {ours[phase] / hand[phase]:.2f}x, {ours[phase] / rows * 1e6:.2f} us/row"
            )
        naive_per_row = f["per_row_updates_s"] / f["naive_rows"]
        self.stdout.write(
            f"rows={rows} {'both':>12}: ours {ours_total:.3f}s, hand-written SQL {hand_total:.3f}s, "
            f"ratio {ours_total / hand_total:.2f}x, {ours_total / rows * 1e6:.2f} us/row; "
            f"{naive_per_row * rows / ours_total:.0f}x faster than per-row updates "
            f"({naive_per_row * 1e6:.0f} us/row measured on {f['naive_rows']} rows, where ours took "
            f"{f['ours_naive_rows_s']:.3f}s: {f['per_row_updates_s'] / f['ours_naive_rows_s']:.0f}x)"
        )
        self.stdout.write(
            f"rows={rows} peak RSS {f['peak_rss_mb_after_distribution']:.0f} MB after our claim and distribution "
            f"({f['peak_rss_mb_before']:.0f} MB before); load average {' '.join(f['loadavg'])}; "
            f"{f['task_messages_withheld']} task messages withheld from the broker"
        )

    def _child(self, rows: int, naive_rows: int, repeat: int) -> dict[str, Any]:
        """One size in a fresh process: its peak RSS is its own."""
        command = [sys.executable, sys.argv[0], "benchmark_conversion", "--json"]
        command += ["--rows", str(rows), "--naive-rows", str(naive_rows), "--repeat", str(repeat)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return figures

    @contextmanager
    def _no_broker(self) -> Iterator[list[tuple[object, ...]]]:
        """The claim enqueues the conversion's first step after commit: count it, send nothing."""
        withheld: list[tuple[object, ...]] = []
        with mock.patch.object(celery_app, "send_task", side_effect=lambda *a, **k: withheld.append(a)):
            yield withheld

    # --- the three contenders: each returns its seconds per phase ----------------------------

    def _ours(self) -> Phases:
        started = time.perf_counter()
        result = check_threshold()
        claimed = time.perf_counter()
        assert result.conversion_id is not None
        # Skip the chain: the batch is where distribution starts, funded by a stand-in payment.
        BatchConversion.objects.filter(pk=result.conversion_id).update(
            status=BatchStatus.EXCHANGING,
            exchange_provider="fixed_price",
            exchange_id=f"bench-{result.conversion_id}",
            host_payment=HostPayment.objects.create(
                owner_kind="conversion",
                chain="eth",
                asset="eth",
                amount=1,
                amount_base_units=10**18,
                from_address="0xbench",
                to_address="0xbench",
            ),
        )
        distributing = time.perf_counter()
        totals = distribute_conversion(result.conversion_id, AMOUNT_TO, "0xbench")
        done = time.perf_counter()
        assert totals is not None
        assert totals.credit + totals.fee == AMOUNT_TO
        return {"claim": claimed - started, "distribution": done - distributing}

    def _hand_written(self) -> Phases:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(HAND_WRITTEN_CLAIM, {"threshold": Decimal("1.00"), "minimum": MINIMUM_FROM_AMOUNT})
            conversion_id = cursor.fetchone()[0]
        claimed = time.perf_counter()
        assert conversion_id is not None
        with transaction.atomic(), connection.cursor() as cursor:
            # The same session settings our distribution makes (SET LOCAL work_mem, enable_nestloop).
            cursor.execute(
                "SELECT set_config('work_mem', %s, true), set_config('enable_nestloop', 'off', true)",
                [settings.PGP_DISTRIBUTION_WORK_MEM],
            )
            cursor.execute(HAND_WRITTEN_DISTRIBUTION, {"cid": conversion_id, "units": int(AMOUNT_TO * 10**6)})
            cursor.execute(
                "SELECT sum(credit_usdt) + sum(fee_usdt) FROM payout_accumulation WHERE batch_conversion_id = %s",
                [conversion_id],
            )
            assert cursor.fetchone()[0] == AMOUNT_TO
        return {"claim": claimed - started, "distribution": time.perf_counter() - claimed}

    def _per_row_updates(self) -> Phases:
        """The original (ORIGINAL_SYSTEM.md defects 4 and 5): read the pending rows, claim them
        one UPDATE and one commit at a time, then distribute (proportional shares, the last row
        takes the remainder) with each row updated on its own connection with its own commit."""
        started = time.perf_counter()
        conversion = BatchConversion.objects.create(
            exchange_provider="bench", threshold_usd=1, total_gross_usd=0, total_net_usd=0, total_eth=1, row_count=1
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, source_amount, fee_percent FROM payout_accumulation WHERE status = 'pending'")
            pending = cursor.fetchall()
            for row_id, _, _ in pending:
                with transaction.atomic():
                    cursor.execute(
                        "UPDATE payout_accumulation SET status='swapping', batch_conversion_id=%s WHERE id=%s",
                        [conversion.pk, row_id],
                    )
        claimed = time.perf_counter()
        total_eth = sum(eth for _, eth, _ in pending)
        given = Decimal(0)
        db = connection.settings_dict
        for index, (row_id, eth, fee_percent) in enumerate(pending):
            usdt = (
                AMOUNT_TO - given
                if index == len(pending) - 1
                else (AMOUNT_TO * eth / total_eth).quantize(Decimal("0.000001"))
            )
            given += usdt
            fee = (usdt * fee_percent / 100).quantize(Decimal("0.000001"))
            own = psycopg2.connect(
                dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"]
            )
            with own, own.cursor() as cursor:
                cursor.execute(
                    "UPDATE payout_accumulation SET status='converted', usdt_amount=%s, fee_usdt=%s, "
                    "credit_usdt=%s WHERE id=%s",
                    [usdt, fee, usdt - fee, row_id],
                )
            own.close()
        return {"claim": claimed - started, "distribution": time.perf_counter() - claimed}

    # --- fixtures ----------------------------------------------------------------------------

    def _time(self, rows: int, contender: Callable[[], Phases]) -> Phases:
        self._reset(rows)
        return contender()

    def _reset(self, rows: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE payout_accumulation, batch_conversions, payouts_hostpayment, payments_payment CASCADE"
            )
        client, _ = Client.objects.get_or_create(
            external_id="-100bench",
            defaults={
                "payout_strategy": "threshold",
                "payout_threshold_usd": 10,
                "payout_currency": "usdt",
                "payout_network": "eth",
                "wallet_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            },
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO payments_payment (provider_payment_id, status, order_id, order_description, price_amount,
                    price_currency, pay_currency, outcome_amount, outcome_currency, client_id, user_id,
                    routing_status, hold_reason, raw_payload, created_at, updated_at)
                SELECT g, 'finished', 'PGP-1|-100bench', '', 10 + (g %% 50), 'usd', 'eth',
                       0.001 + (g %% 997) * 0.000013, 'eth', %s, 1, 'routed', '', '{}'::jsonb, now(), now()
                  FROM generate_series(1, %s) AS g
                """,
                [client.pk, rows],
            )
            cursor.execute(
                """
                INSERT INTO payout_accumulation (payment_id, client_id, user_id, status, hold_reason, gross_usd,
                    fee_percent, fee_usd, net_usd, source_asset, source_currency, source_amount, wallet_address,
                    payout_currency, payout_network, created_at, updated_at)
                SELECT p.id, p.client_id, 1, 'pending', '', p.price_amount, 3.00, round(p.price_amount * 0.03, 2),
                       p.price_amount - round(p.price_amount * 0.03, 2), 'eth', 'eth', p.outcome_amount,
                       '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', 'usdt', 'eth', now(), now()
                  FROM payments_payment p
                """
            )
            cursor.execute("ANALYZE payout_accumulation")
            # Every contender starts right after a checkpoint: each then pays the same full-page
            # images in its WAL, instead of whichever run a checkpoint happened to precede.
            cursor.execute("CHECKPOINT")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _json_line(figures: dict[str, Any]) -> str:
    return json.dumps(figures, default=str)
