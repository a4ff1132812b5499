"""Benchmark: claim + distribution of a conversion on PostgreSQL (issue: "claim and distribution
over 100,000 rows"). Not a test: prints figures for the release notes.

    createdb -h 127.0.0.1 -U postgres pgp_bench
    DJANGO_SETTINGS_MODULE=pgp_project.settings.local DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_bench \\
        .venv/bin/python manage.py benchmark_conversion --rows 100000 --naive-rows 10000

It compares our services (check_threshold's claim + distribute_conversion) with (a) the same work
as hand-written single SQL statements and (b) the original system's approach, one UPDATE and one
commit per row (measured on --naive-rows and compared per row).
"""

import time
from collections.abc import Callable
from decimal import Decimal

import psycopg2
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from batching.conversion import check_threshold
from batching.distribution import distribute_conversion
from batching.models import BatchConversion
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment
from pgp_project.operations.selectors import get_runtime_settings

AMOUNT_TO = Decimal("123456.789012")

HAND_WRITTEN_CLAIM = """
WITH conversion AS (
    INSERT INTO batch_conversions (status, exchange_provider, exchange_id, threshold_usd, total_gross_usd,
                                   total_net_usd, total_eth, row_count, payin_address, exchange_status, payout_tx_hash,
                                   review_reason, last_error, attempts, abandoned_exchange_ids, created_at, updated_at)
    SELECT 'created', 'bench', 'bench-' || gen_random_uuid(), 20, sum(gross_usd), sum(net_usd), sum(source_amount),
           count(*), '', '', '', '', '', 0, '[]'::jsonb, now(), now()
      FROM payout_accumulation WHERE status = 'pending'
    RETURNING id
)
UPDATE payout_accumulation SET status = 'swapping', batch_conversion_id = (SELECT id FROM conversion),
       updated_at = now()
 WHERE status = 'pending'
RETURNING batch_conversion_id
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


class Command(BaseCommand):
    help = "Benchmark claim + distribution against hand-written SQL and a per-row update loop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--naive-rows", type=int, default=10_000)
        parser.add_argument("--repeat", type=int, default=3)

    def handle(self, *args: object, rows: int, naive_rows: int, repeat: int, **options: object) -> None:
        if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
            raise CommandError("run against a PostgreSQL database whose name contains 'bench' (its data is wiped)")
        call_command("migrate", verbosity=0)
        # No outside service: the stand-ins' fixed-price exchange answers the minimum check.
        settings.PGP_EXCHANGE_PROVIDER = "fixed_price"
        threshold = get_runtime_settings()
        threshold.micro_batch_threshold_usd = Decimal("1.00")
        threshold.save()

        ours = min(self._time(rows, self._ours) for _ in range(repeat))
        hand = min(self._time(rows, self._hand_written) for _ in range(repeat))
        ours_small = min(self._time(naive_rows, self._ours) for _ in range(repeat))
        naive_small = self._time(naive_rows, self._per_row_updates)

        self.stdout.write(f"rows={rows}: ours {ours:.3f}s, hand-written SQL {hand:.3f}s, ratio {ours / hand:.2f}x")
        self.stdout.write(
            f"rows={naive_rows}: ours {ours_small:.3f}s, the original's per-row updates {naive_small:.3f}s, "
            f"ours is {naive_small / ours_small:.0f}x faster"
        )

    # --- the three contenders --------------------------------------------------------------

    def _ours(self) -> None:
        result = check_threshold()
        assert result.conversion_id is not None
        # Skip the chain: the batch is where distribution starts, funded by a stand-in payment.
        BatchConversion.objects.filter(pk=result.conversion_id).update(
            status=BatchStatus.EXCHANGING,
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
        totals = distribute_conversion(result.conversion_id, AMOUNT_TO, "0xbench")
        assert totals is not None
        assert totals.credit + totals.fee == AMOUNT_TO

    def _hand_written(self) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(HAND_WRITTEN_CLAIM)
            conversion_id = cursor.fetchone()[0]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(HAND_WRITTEN_DISTRIBUTION, {"cid": conversion_id, "units": int(AMOUNT_TO * 10**6)})
            cursor.execute(
                "SELECT sum(credit_usdt) + sum(fee_usdt) FROM payout_accumulation WHERE batch_conversion_id = %s",
                [conversion_id],
            )
            assert cursor.fetchone()[0] == AMOUNT_TO

    def _per_row_updates(self) -> None:
        """The original (ORIGINAL_SYSTEM.md defects 4 and 5): read the pending rows, claim them
        one UPDATE and one commit at a time, then distribute (proportional shares, the last row
        takes the remainder) with each row updated on its own connection with its own commit."""
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

    # --- fixtures ----------------------------------------------------------------------------

    def _time(self, rows: int, contender: Callable[[], None]) -> float:
        self._reset(rows)
        started = time.perf_counter()
        contender()
        return time.perf_counter() - started

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
