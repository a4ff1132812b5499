"""A busy gateway's two years, written straight into PostgreSQL at bulk-insert speed, for
timing the console at scale (`manage.py seed_scale`, benchmarks/console_at_scale.py).

Every table is filled by `INSERT ... SELECT` from `generate_series` or from the rows written
just before, on the server: nothing streams through Python. The rows are the ones the real
pipeline would have left behind, and satisfy every constraint of the schema:

- payments (ids in time order over the two years): mostly finished, some expired, failed,
  refunded, a few partially paid or unroutable (held), the last minutes' still waiting;
- one accumulation row per finished payment of a threshold client (2% paid in USDT ERC-20 and
  credited as received, the rest in ETH);
- conversions: the ETH rows of each consecutive time window, in one conversion each. A completed
  one's received USDT is split over its rows exactly as batching.distribution does it (largest
  remainder in 10^-6 USDT units, ties to the lower id; then each row's fee half-up from its fee %
  snapshot): sum(credit) + sum(fee) == received, exactly. A few conversions failed (review,
  rows still swapping), a few were cancelled (their rows went to the next one), the last three
  are still under way and the newest rows are pending;
- client payouts: each threshold client's converted rows, one payout per client per period;
  the current period's rows are still converted (the client's balance), the newest payouts are
  open (awaiting approval, exchange created, funding, exchanging) and a few failed; instant
  payouts, one per finished payment of an instant client;
- one host payment per conversion and per payout that reached funding (with its EVM nonce
  record and its signed candidate), the audit trail of every batch and host payment transition,
  and two IPN events per payment on average (its first notification and its final status; a
  few duplicates and refused unsigned ones).

Money is exact: amounts are numerics computed in SQL with integer base units where anything is
divided; no float reaches a money column (the ETH price curve is rounded to cents first).
"""

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from eth_utils import to_checksum_address

logger = logging.getLogger(__name__)

# One statement (or a few) of the load: (name, function(cursor, parameters) -> rows written).
Step = tuple[str, Callable[[Any, dict[str, Any]], int]]

SPAN = timedelta(days=730)
HOT_WALLET = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"  # anvil's first account, as in the demo
CLIENT_PREFIX = "-100scale"
# About this many payments are unroutable (held for review), and about this many partially
# paid (held too): "a few" in the needs-attention queue at any scale.
HELD_PAYMENTS = 500
PARTIAL_PAYMENTS = 200
# How long before now an instant payout is still under way.
OPEN_WINDOW = timedelta(hours=3)


@dataclass(frozen=True)
class SeedSize:
    """How many rows of each table; `for_scale` derives all of them from the issue's size."""

    payments: int = 10_000_000
    ipn_events: int = 20_000_000
    conversions: int = 50_000
    threshold_payouts: int = 180_000
    instant_payouts: int = 20_000
    clients: int = 300

    @classmethod
    def for_scale(cls, scale: float, **overrides: int | None) -> "SeedSize":
        default = cls()
        counts = {f.name: max(1, round(getattr(default, f.name) * scale)) for f in fields(cls)}
        counts["clients"] = max(10, counts["clients"])
        counts["conversions"] = max(12, counts["conversions"])
        counts["threshold_payouts"] = max(counts["clients"], counts["threshold_payouts"])
        counts.update({name: value for name, value in overrides.items() if value is not None})
        size = cls(**counts)
        if size.payments < 10 * size.conversions or size.payments < 10 * size.instant_payouts:
            raise ValueError("need at least ten payments per conversion and per instant payout")
        return size


@dataclass
class SeedReport:
    timings: list[tuple[str, int, float]] = field(default_factory=list)
    total_seconds: float = 0.0


class DatabaseNotEmpty(Exception):
    """The database already holds payments and --force was not given."""


def existing_payments() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT 1 FROM payments_payment LIMIT 1) AS any_payment")
        return int(cursor.fetchone()[0])


def seed(size: SeedSize, *, force: bool = False, progress: Callable[[str], None] = logger.info) -> SeedReport:
    """Write the data set; refuse a database that already holds payments unless `force` (the
    new rows then take ids above the existing ones and clients of their own).

    Clients and payments first; then, on two connections at once (the machine's two cores),
    the IPN events, and the money chain (accumulation rows, batches, host payments, audit).
    Foreign keys are checked once for the whole load at the end, set-based (`verify_foreign_keys`),
    rather than row by row by their triggers, which would cost a third of the load."""
    if existing_payments() and not force:
        raise DatabaseNotEmpty(
            "this database already holds payments: seed_scale writes a data set into a fresh database "
            "(pass --force to add one beside them)"
        )
    report = SeedReport()
    started = time.monotonic()
    params = _parameters(size)

    def run(groups: list[list[Step]]) -> None:
        _run_groups(groups, params, report, progress)

    run(FIRST)
    with ThreadPoolExecutor(max_workers=len(CONCURRENT), thread_name_prefix="seed") as pool:
        for future in [pool.submit(_in_own_connection, run, branch) for branch in CONCURRENT]:
            future.result()
    run(LAST)
    step_started = time.monotonic()
    checked = verify_foreign_keys()
    _report(report, progress, f"foreign keys ({checked} checked)", 0, step_started)
    report.total_seconds = time.monotonic() - started
    progress(f"{'total':<32} {'':>12}      {report.total_seconds:8.1f} s")
    return report


def _in_own_connection(run: Callable[[list[list[Step]]], None], groups: list[list[Step]]) -> None:
    try:
        run(groups)
    finally:
        connection.close()  # this thread's own


def _run_groups(
    groups: list[list[Step]], params: dict[str, Any], report: SeedReport, progress: Callable[[str], None]
) -> None:
    with connection.cursor() as cursor:
        _prepare_session(cursor, large=params["payments"] >= 1_000_000)
        for group in groups:
            # A group commits together: a batch's host payment (a deferred foreign key, when the
            # triggers are on) is written after the batch, in the same transaction.
            with transaction.atomic():
                for name, step in group:
                    step_started = time.monotonic()
                    rows = step(cursor, params)
                    _report(report, progress, name, rows, step_started)


def _report(report: SeedReport, progress: Callable[[str], None], name: str, rows: int, since: float) -> None:
    elapsed = time.monotonic() - since
    report.timings.append((name, rows, elapsed))
    progress(f"{name:<32} {rows:>12,} rows {elapsed:8.1f} s")


def _prepare_session(cursor: Any, *, large: bool) -> None:
    # A seed is rewritten from scratch if the machine dies: no flush to disk per commit.
    cursor.execute("SET synchronous_commit = off")
    cursor.execute("SET work_mem = '256MB'")
    # Foreign-key triggers off for this session, as pg_restore --disable-triggers does (needs a
    # superuser; without one they stay on, and the load is only slower); verify_foreign_keys
    # checks every key afterwards. The triggers that keep the rows by status for /metrics
    # (pgp_project/operations/status_counts.py) are ENABLE ALWAYS: they still fire.
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        cursor.execute("SET session_replication_role = replica")
    # The subqueries of the steps end in OFFSET 0: a fence, so that PostgreSQL computes each
    # derived column once instead of pulling the subquery up and repeating its expression at each use.
    _define_helpers(cursor)
    if not large:
        cursor.execute("SET jit = off")  # compiling costs more than it saves on small loads


def verify_foreign_keys() -> int:
    """Every foreign key of every table, checked set-based (one anti-join each); raises
    SeedIntegrityError naming the first key with a dangling reference. Returns how many keys."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT con.conname, child.relname, parent.relname,
                   array_agg(ca.attname ORDER BY k.ord), array_agg(pa.attname ORDER BY k.ord)
              FROM pg_constraint AS con
              JOIN pg_class AS child ON child.oid = con.conrelid
              JOIN pg_class AS parent ON parent.oid = con.confrelid
              JOIN pg_namespace AS ns ON ns.oid = child.relnamespace AND ns.nspname = current_schema()
             CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(child_col, parent_col, ord)
              JOIN pg_attribute AS ca ON ca.attrelid = con.conrelid AND ca.attnum = k.child_col
              JOIN pg_attribute AS pa ON pa.attrelid = con.confrelid AND pa.attnum = k.parent_col
             WHERE con.contype = 'f'
             GROUP BY con.conname, child.relname, parent.relname
            """
        )
        keys = cursor.fetchall()
        quote = connection.ops.quote_name
        for name, child, parent, child_cols, parent_cols in keys:
            match = " AND ".join(
                f"p.{quote(pc)} = c.{quote(cc)}" for cc, pc in zip(child_cols, parent_cols, strict=True)
            )
            present = " AND ".join(f"c.{quote(cc)} IS NOT NULL" for cc in child_cols)
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {quote(child)} AS c WHERE {present} "  # noqa: S608 (catalogue names)
                f"AND NOT EXISTS (SELECT 1 FROM {quote(parent)} AS p WHERE {match}))"
            )
            if cursor.fetchone()[0]:
                raise SeedIntegrityError(f"{child} has rows whose {name} points at no {parent} row")
    return len(keys)


class SeedIntegrityError(Exception):
    """A seeded row references nothing: a bug in the seed."""


def _parameters(size: SeedSize) -> dict[str, Any]:
    with connection.cursor() as cursor:
        offsets = {}
        for key, table in OFFSET_TABLES.items():
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")  # noqa: S608 (our table names)
            offsets[key] = int(cursor.fetchone()[0])
        cursor.execute("SELECT coalesce(max(provider_payment_id), 4000000000) FROM payments_payment")
        provider_offset = int(cursor.fetchone()[0])
    end = timezone.now().replace(microsecond=0)
    start = end - SPAN
    threshold_clients = size.clients - max(1, size.clients // 10)
    conversions = size.conversions
    # Conversions that failed (review) or were cancelled (rows released to the next one), spread
    # over the two years, never among the last three (still under way) nor next to each other.
    count = _specials(conversions)
    special = [1 + int((conversions - 6) * (2 * n + 1) / (2 * count)) for n in range(count)]
    failed_conversions = special[0::2]
    cancelled_conversions = special[1::2]
    period_seconds = SPAN.total_seconds() * threshold_clients / size.threshold_payouts
    return {
        "payments": size.payments,
        "events": size.ipn_events,
        "conversions": conversions,
        "clients": size.clients,
        "threshold_clients": threshold_clients,
        "instant_clients": size.clients - threshold_clients,
        "instant_every": size.payments // size.instant_payouts,
        "failed_conversions": failed_conversions,
        "cancelled_conversions": cancelled_conversions,
        "period_seconds": period_seconds,
        "failed_payout_every": max(20, size.threshold_payouts // 20),
        "start": start,
        "end": end,
        "span_seconds": SPAN.total_seconds(),
        "open_since": end - OPEN_WINDOW,
        "latest_since": end - timedelta(seconds=period_seconds + 60),
        "hot_wallet": HOT_WALLET,
        "client_prefix": f"{CLIENT_PREFIX}{offsets['client'] or ''}",
        "provider_offset": provider_offset,
        "buckets": int(SPAN.total_seconds() // period_seconds) + 2,
        **{f"{key}_offset": value for key, value in offsets.items()},
    }


def _specials(conversions: int) -> int:
    return max(2, conversions // 2500)


OFFSET_TABLES = {
    "client": "payments_client",
    "payment": "payments_payment",
    "row": "payout_accumulation",
    "conversion": "batch_conversions",
    "payout": "payout_batches",
    "host_payment": "payouts_hostpayment",
    "event": "payments_paymentevent",
    "audit": "operations_auditevent",
}


def _define_helpers(cursor: Any) -> None:
    """Session functions the statements share, so each fact has one definition."""
    cursor.execute(
        """
        -- A well-mixed non-negative integer of (n, salt): the seed's only source of variety.
        CREATE OR REPLACE FUNCTION pg_temp.seed_hash(n bigint, salt int) RETURNS bigint
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            $$ SELECT (hashint8(n * 1000 + salt)::bigint & 2147483647) $$;
        -- ETH in USD at a point of the two years (fraction 0..1): 1800 to 3600 with swings, in cents.
        CREATE OR REPLACE FUNCTION pg_temp.seed_eth_usd(f double precision) RETURNS numeric
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            $$ SELECT round((1800 + 1800 * f + 250 * sin(f * 40))::numeric, 2) $$;
        -- What a threshold payout of (period, client index) created at `created` is now: the
        -- latest payout (created after `latest_since`) of one client in five is still under way.
        CREATE OR REPLACE FUNCTION pg_temp.seed_payout_status(
                bucket bigint, client_index int, created timestamptz, latest_since timestamptz, failed_every int)
            RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
            $$ SELECT CASE
                WHEN created > latest_since AND mod(client_index, 5) = 0 THEN
                    (ARRAY['awaiting_approval', 'swap_created', 'funding', 'exchanging'])[1 + mod(client_index / 5, 4)]
                WHEN mod(bucket * 7919 + client_index, failed_every) = 3 THEN 'failed'
                ELSE 'completed' END $$;
        """
    )


def _clients(cursor: Any, p: dict[str, Any]) -> int:
    # Threshold clients first (ids offset+1 ..), then instant ones; paid in USDT, ETH or USDC on
    # Ethereum (an address the validators accept), one in seven with a fee of its own.
    cursor.execute(
        """
        INSERT INTO payments_client (id, external_id, name, payout_strategy, payout_threshold_usd, payout_currency,
                                     payout_network, wallet_address, payout_extra_id, fee_percent_override,
                                     is_active, created_at, updated_at)
        SELECT %(client_offset)s + n, %(client_prefix)s || n, 'Scale channel ' || n,
               CASE WHEN n <= %(threshold_clients)s THEN 'threshold' ELSE 'instant' END,
               CASE WHEN n <= %(threshold_clients)s THEN 5000.00 ELSE 0.00 END,
               (ARRAY['usdt', 'eth', 'usdc'])[1 + mod(n, 3)], 'eth',
               (%(wallets)s::text[])[n], '',
               CASE WHEN mod(n, 7) = 0 THEN 2.50 END, true, %(start)s, %(start)s
          FROM generate_series(1, %(clients)s) AS n
        """,
        {**p, "wallets": [_wallet(n) for n in range(1, p["clients"] + 1)]},
    )
    count = cursor.rowcount
    cursor.execute(
        """
        INSERT INTO operations_runtimesettings (id, micro_batch_threshold_usd, default_fee_percent,
                                                payout_approval_limit_usdt, updated_at)
        VALUES (1, 20.00, 3.00, 1000.000000, now()) ON CONFLICT (id) DO NOTHING;
        INSERT INTO payments_referenceprice (asset_symbol, usd_price, source, fetched_at)
        VALUES ('eth', pg_temp.seed_eth_usd(1.0), 'changenow', now())
        ON CONFLICT (asset_symbol) DO UPDATE SET usd_price = EXCLUDED.usd_price, fetched_at = EXCLUDED.fetched_at;
        """
    )
    return count


def _wallet(n: int) -> str:
    """A client's Ethereum address, EIP-55 checksummed as the wallet validator requires."""
    return str(to_checksum_address("0x" + hashlib.sha256(f"scale wallet {n}".encode()).hexdigest()[:40]))


def _payments(cursor: Any, p: dict[str, Any]) -> int:
    cursor.execute(
        """
        INSERT INTO payments_payment (id, provider_payment_id, status, order_id, order_description, price_amount,
                                      price_currency, pay_amount, pay_currency, actually_paid, outcome_amount,
                                      outcome_currency, client_id, user_id, routing_status, hold_reason,
                                      raw_payload, created_at, updated_at)
        SELECT %(payment_offset)s + i, %(provider_offset)s + i, status,
               'PGP-' || user_id || '|' || channel, 'Subscription, 30 days', price, 'usd',
               pay_amount, currency, CASE WHEN status IN ('waiting', 'expired') THEN 0 ELSE pay_amount END,
               outcome, currency,
               CASE WHEN routing = 'routed' THEN client_id END, user_id, routing,
               CASE WHEN routing <> 'held' THEN ''
                    WHEN status = 'partially_paid' THEN 'partially paid: ' || pay_amount || ' ' || currency
                         || ' of the invoice arrived; accept the part paid or refund it'
                    ELSE 'no client ' || channel || ' (order_id ' || 'PGP-' || user_id || '|' || channel
                         || '); add the client, then route the payment again' END,
               jsonb_build_object('payment_id', %(provider_offset)s + i, 'payment_status', status,
                                  'price_amount', price::text, 'price_currency', 'usd',
                                  'pay_amount', pay_amount::text, 'pay_currency', currency,
                                  'outcome_amount', outcome::text, 'outcome_currency', currency,
                                  'order_id', 'PGP-' || user_id || '|' || channel),
               created_at, created_at + interval '20 minutes'
          FROM (
            SELECT i, price, currency, created_at, client_id, user_id, status,
                   CASE WHEN unroutable THEN channel || 'gone' ELSE channel END AS channel,
                   CASE WHEN currency = 'usdterc20' THEN price
                        ELSE round(price / pg_temp.seed_eth_usd(f), 12) END AS pay_amount,
                   CASE WHEN currency = 'usdterc20' THEN round(price * 0.995, 6)
                        ELSE round(price * 0.995 / pg_temp.seed_eth_usd(f), 12) END AS outcome,
                   CASE WHEN status = 'partially_paid' OR (status = 'finished' AND unroutable) THEN 'held'
                        WHEN status = 'finished' THEN 'routed' ELSE 'not_finished' END AS routing
              FROM (
                SELECT i, f, created_at, client_id, user_id, price, currency,
                       %(client_prefix)s || (client_id - %(client_offset)s) AS channel,
                       mod(i, %(held_every)s) = 13 AND client_id - %(client_offset)s <= %(threshold_clients)s
                           AS unroutable,
                       CASE WHEN created_at > %(end)s - interval '30 minutes' AND mod(s, 10) < 4 THEN
                                (ARRAY['waiting', 'confirming', 'sending', 'waiting'])[1 + mod(s, 4)]
                            WHEN mod(i, %(partial_every)s) = 7 THEN 'partially_paid'
                            WHEN s < 9300 THEN 'finished'
                            WHEN s < 9800 THEN 'expired'
                            WHEN s < 9900 THEN 'failed'
                            WHEN s < 9950 THEN 'refunded'
                            ELSE 'finished' END AS status
                  FROM (
                    SELECT i, f, %(start)s + make_interval(secs => f * %(span_seconds)s) AS created_at,
                           mod(pg_temp.seed_hash(i, 2), 10000) AS s,
                           1000 + mod(pg_temp.seed_hash(i, 3), 500000) AS user_id,
                           round(5.00 + mod(pg_temp.seed_hash(i, 1), 50000) / 100.0, 2) AS price,
                           CASE WHEN mod(i, 50) = 1 AND mod(i, %(instant_every)s) <> 0 THEN 'usdterc20' ELSE 'eth' END
                               AS currency,
                           %(client_offset)s + CASE
                               WHEN mod(i, %(instant_every)s) = 0
                                   THEN %(threshold_clients)s + 1 + mod(i / %(instant_every)s, %(instant_clients)s)
                               ELSE 1 + mod(pg_temp.seed_hash(i, 4), %(threshold_clients)s) END AS client_id
                      FROM (SELECT i, (i - 0.5) / %(payments)s AS f
                              FROM generate_series(1, %(payments)s) AS i OFFSET 0) AS g
                   OFFSET 0) AS drawn
               OFFSET 0) AS decided
           OFFSET 0) AS priced
        """,
        {
            **p,
            "held_every": max(97, p["payments"] // HELD_PAYMENTS),
            "partial_every": max(199, p["payments"] // PARTIAL_PAYMENTS),
        },
    )
    return cursor.rowcount


def _stage_rows(cursor: Any, p: dict[str, Any]) -> int:
    """Every accumulation row's facts but its USDT, with the conversion that claimed it (its
    time window's; a cancelled one's rows went to the next) and the ETH in wei."""
    cursor.execute(
        """
        DROP TABLE IF EXISTS seed_scale_rows;
        CREATE UNLOGGED TABLE seed_scale_rows AS
        SELECT pay.id AS payment_id, pay.client_id, pay.user_id, pay.created_at, pay.price_amount AS gross_usd,
               fee.percent AS fee_percent,
               round(pay.price_amount * fee.percent / 100, 2) AS fee_usd,
               pay.outcome_currency AS source_currency, pay.outcome_amount AS source_amount,
               (pay.outcome_amount * 1000000000000000000)::numeric(78, 0) AS wei,
               CASE WHEN window_of.k = ANY(%(cancelled_conversions)s) THEN window_of.k + 1 ELSE window_of.k END
                   AS conversion, window_of.k AS claimed_first_by,
               cl.id - %(client_offset)s - 1 AS client_index
          FROM payments_payment AS pay
          JOIN payments_client AS cl ON cl.id = pay.client_id AND cl.payout_strategy = 'threshold'
          CROSS JOIN LATERAL (SELECT coalesce(cl.fee_percent_override, 3.00) AS percent) AS fee
          CROSS JOIN LATERAL (
              SELECT CASE WHEN pay.outcome_currency = 'eth'
                          THEN (pay.id - %(payment_offset)s - 1) * (%(conversions)s + 1) / %(payments)s + 1 END AS k
          ) AS window_of
         WHERE pay.id > %(payment_offset)s AND pay.routing_status = 'routed';
        """,
        p,
    )
    return cursor.rowcount


def _stage_conversions(cursor: Any, p: dict[str, Any]) -> int:
    """Each conversion's rows and totals as claimed, and the USDT a completed one received."""
    cursor.execute(
        """
        DROP TABLE IF EXISTS seed_scale_conversions;
        CREATE UNLOGGED TABLE seed_scale_conversions AS
        SELECT k, rows, wei, gross_usd, net_usd, created_at,
               CASE WHEN k > %(conversions)s THEN 'pending'
                    WHEN k = %(conversions)s THEN 'swap_created'
                    WHEN k = %(conversions)s - 1 THEN 'funding'
                    WHEN k = %(conversions)s - 2 THEN 'exchanging'
                    WHEN k = ANY(%(failed_conversions)s) THEN 'failed'
                    WHEN k = ANY(%(cancelled_conversions)s) THEN 'cancelled'
                    ELSE 'completed' END AS status,
               -- What the exchange paid: 99.5%% of the ETH's worth at the time, in 10^-6 USDT units.
               div(wei * pg_temp.seed_eth_usd(extract(epoch FROM created_at - %(start)s) / %(span_seconds)s) * 995,
                   1000 * 1000000000000) AS received_units
          FROM (
            SELECT k, count(*) AS rows, sum(wei) AS wei, sum(gross_usd) AS gross_usd,
                   sum(gross_usd - fee_usd) AS net_usd,
                   %(start)s + make_interval(secs => k * %(span_seconds)s / (%(conversions)s + 1) + 60) AS created_at
              FROM (SELECT conversion AS k, wei, gross_usd, fee_usd FROM seed_scale_rows WHERE conversion IS NOT NULL
                    UNION ALL
                    SELECT claimed_first_by, wei, gross_usd, fee_usd FROM seed_scale_rows
                     WHERE claimed_first_by = ANY(%(cancelled_conversions)s)) AS claims
             GROUP BY k
          ) AS totals;
        """,
        p,
    )
    return cursor.rowcount


def _accumulation(cursor: Any, p: dict[str, Any]) -> int:
    """The rows, credited as the distribution credits them, and claimed by their payout."""
    cursor.execute(
        """
        INSERT INTO payout_accumulation (id, payment_id, client_id, user_id, status, hold_reason, gross_usd,
                                         fee_percent, fee_usd, net_usd, source_asset, source_currency,
                                         source_amount, batch_conversion_id, payout_batch_id, usdt_amount, fee_usdt,
                                         credit_usdt, wallet_address, payout_currency, payout_network, created_at,
                                         converted_at, paid_out_at, updated_at)
        SELECT %(row_offset)s + (payment_id - %(payment_offset)s), payment_id, client_id, user_id,
               CASE WHEN units IS NULL THEN CASE WHEN conversion_status = 'pending' THEN 'pending' ELSE 'swapping' END
                    WHEN payout_created > %(end)s THEN 'converted'
                    WHEN payout_status = 'completed' THEN 'paid_out'
                    ELSE 'in_payout' END,
               '', gross_usd, fee_percent, fee_usd, gross_usd - fee_usd,
               CASE WHEN source_currency = 'eth' THEN 'eth' ELSE 'usdterc20' END, source_currency, source_amount,
               CASE WHEN conversion_status <> 'pending' THEN conversion END,
               CASE WHEN units IS NOT NULL AND payout_created <= %(end)s
                    THEN %(payout_offset)s + bucket * %(threshold_clients)s + client_index + 1 END,
               units * 0.000001, fee_units * 0.000001, (units - fee_units) * 0.000001,
               cl.wallet_address, cl.payout_currency, cl.payout_network, r.created_at,
               converted_at,
               CASE WHEN units IS NOT NULL AND payout_created <= %(end)s AND payout_status = 'completed'
                    THEN payout_created + interval '40 minutes' END,
               greatest(r.created_at, coalesce(converted_at, r.created_at))
          FROM (
            SELECT *, pg_temp.seed_payout_status(bucket, client_index::int, payout_created, %(latest_since)s,
                                                 %(failed_payout_every)s) AS payout_status
              FROM (
                SELECT *, %(start)s + make_interval(secs => (bucket + 1) * %(period_seconds)s + client_index * 10)
                              AS payout_created
                  FROM (
                    SELECT *,
                           floor(extract(epoch FROM converted_at - %(start)s) / %(period_seconds)s)::bigint AS bucket,
                           div(units * fee_percent * 100 + 5000, 10000) AS fee_units
                      FROM (
                        SELECT *, CASE WHEN source_currency <> 'eth' THEN created_at
                                       WHEN units IS NOT NULL THEN conversion_created + interval '25 minutes'
                                  END AS converted_at
                          FROM (
                            -- The distribution: floor share, plus one unit for the largest remainders.
                            SELECT s.*, c.status AS conversion_status, c.created_at AS conversion_created,
                                   CASE WHEN s.source_currency <> 'eth'
                                            THEN (s.source_amount * 1000000)::numeric(78, 0)
                                        WHEN c.status = 'completed' THEN
                                            div(c.received_units * s.wei, c.wei)
                                            + CASE WHEN row_number() OVER shares
                                                        <= c.received_units - sum(div(c.received_units * s.wei, c.wei))
                                                                              OVER conversion
                                                   THEN 1 ELSE 0 END
                                   END AS units
                              FROM seed_scale_rows AS s
                              LEFT JOIN seed_scale_conversions AS c ON c.k = s.conversion
                            WINDOW conversion AS (PARTITION BY s.conversion),
                                   shares AS (PARTITION BY s.conversion
                                              ORDER BY mod(c.received_units * s.wei, c.wei) DESC, s.payment_id)
                           OFFSET 0) AS distributed
                       OFFSET 0) AS dated
                   OFFSET 0) AS bucketed
               OFFSET 0) AS scheduled
           OFFSET 0) AS r
          JOIN payments_client AS cl ON cl.id = r.client_id
        """,
        p,
    )
    return cursor.rowcount


def _conversions(cursor: Any, p: dict[str, Any]) -> int:
    cursor.execute(
        """
        INSERT INTO batch_conversions (id, status, exchange_provider, exchange_id, payin_address, exchange_from_amount,
                                       expected_amount, exchange_valid_until, exchange_status, abandoned_exchange_ids,
                                       host_payment_id, payout_tx_hash, review_reason, last_error, attempts,
                                       next_action_at, deadline_at, created_at, updated_at, completed_at,
                                       threshold_usd, total_gross_usd, total_net_usd, total_eth, row_count,
                                       received_usdt, fee_usdt_total, credit_usdt_total)
        SELECT %(conversion_offset)s + c.k, c.status, 'changenow',
               CASE WHEN c.status <> 'cancelled' THEN 'c' || lpad(to_hex(%(conversion_offset)s + c.k), 13, '0') END,
               CASE WHEN c.status <> 'cancelled' THEN '0x' || substr(md5('payin-c' || c.k), 1, 20)
                                                      || substr(md5('payin-c2' || c.k), 1, 20) ELSE '' END,
               CASE WHEN c.status <> 'cancelled' THEN c.wei * 0.000000000000000001 END,
               CASE WHEN c.status <> 'cancelled' THEN c.received_units * 0.000001 END,
               CASE WHEN c.status <> 'cancelled' THEN c.created_at + interval '15 minutes' END,
               CASE c.status WHEN 'completed' THEN 'finished' WHEN 'exchanging' THEN 'exchanging'
                             WHEN 'failed' THEN 'failed' WHEN 'cancelled' THEN '' ELSE 'waiting' END,
               '[]'::jsonb,
               CASE WHEN c.status IN ('funding', 'exchanging', 'completed', 'failed')
                    THEN %(host_payment_offset)s + c.k END,
               CASE WHEN c.status = 'completed' THEN '0x' || md5('usdt-in' || c.k) || md5('usdt-in2' || c.k)
                    ELSE '' END,
               CASE c.status WHEN 'failed' THEN 'the exchange reported failed after our deposit confirmed: '
                                                || 'ask ChangeNOW for a refund or the payout, then resume or cancel'
                             ELSE '' END,
               CASE WHEN c.status = 'cancelled' THEN 'the exchange expired before funding; rows released' ELSE '' END,
               CASE WHEN c.status = 'completed' THEN 6 ELSE 2 END,
               CASE WHEN c.status IN ('swap_created', 'funding', 'exchanging') THEN %(end)s + interval '30 seconds' END,
               CASE WHEN c.status IN ('swap_created', 'funding', 'exchanging') THEN c.created_at + interval '6 hours'
               END,
               c.created_at, c.created_at + interval '25 minutes',
               CASE WHEN c.status = 'completed' THEN c.created_at + interval '25 minutes' END,
               20.00, c.gross_usd, c.net_usd, c.wei * 0.000000000000000001, c.rows,
               CASE WHEN c.status = 'completed' THEN c.received_units * 0.000001 END,
               CASE WHEN c.status = 'completed' THEN coalesce(credited.fee, 0) END,
               CASE WHEN c.status = 'completed' THEN coalesce(credited.credit, 0) END
          FROM seed_scale_conversions AS c
          LEFT JOIN (SELECT batch_conversion_id, sum(fee_usdt) AS fee, sum(credit_usdt) AS credit
                       FROM payout_accumulation
                      WHERE id > %(row_offset)s AND batch_conversion_id IS NOT NULL AND usdt_amount IS NOT NULL
                      GROUP BY batch_conversion_id) AS credited
            ON credited.batch_conversion_id = %(conversion_offset)s + c.k
         WHERE c.status <> 'pending'
        """,
        p,
    )
    return cursor.rowcount


def _threshold_payouts(cursor: Any, p: dict[str, Any]) -> int:
    cursor.execute(
        """
        INSERT INTO payout_batches (id, status, exchange_provider, exchange_id, payin_address, exchange_from_amount,
                                    expected_amount, exchange_valid_until, exchange_status, abandoned_exchange_ids,
                                    host_payment_id, payout_tx_hash, review_reason, last_error, attempts,
                                    next_action_at, deadline_at, created_at, updated_at, completed_at, kind,
                                    client_id, payment_id, wallet_address, payout_extra_id, payout_currency,
                                    payout_network, source_currency, total_usdt, source_amount, fee_amount,
                                    sent_value_usdt, row_count, payout_amount)
        SELECT b.id, b.status, 'changenow',
               CASE WHEN b.status <> 'awaiting_approval' THEN 'p' || lpad(to_hex(b.id), 13, '0') END,
               CASE WHEN b.status <> 'awaiting_approval' THEN '0x' || substr(md5('payin-p' || b.id), 1, 20)
                                                              || substr(md5('payin-p2' || b.id), 1, 20) ELSE '' END,
               CASE WHEN b.status <> 'awaiting_approval' THEN b.total END,
               CASE WHEN b.status <> 'awaiting_approval' THEN b.total * 0.99 END,
               CASE WHEN b.status <> 'awaiting_approval' THEN b.created_at + interval '15 minutes' END,
               CASE b.status WHEN 'completed' THEN 'finished' WHEN 'exchanging' THEN 'sending'
                             WHEN 'failed' THEN 'failed' WHEN 'awaiting_approval' THEN '' ELSE 'waiting' END,
               '[]'::jsonb,
               CASE WHEN b.status IN ('funding', 'exchanging', 'completed', 'failed')
                    THEN %(host_payment_offset)s + %(conversions)s + (b.id - %(payout_offset)s) END,
               CASE WHEN b.status = 'completed' THEN '0x' || md5('out' || b.id) || md5('out2' || b.id) ELSE '' END,
               CASE WHEN b.status = 'failed' THEN 'the exchange reported failed after our deposit confirmed: '
                                                  || 'ask ChangeNOW for a refund or the payout, then resume or cancel'
                    ELSE '' END,
               '', CASE WHEN b.status = 'completed' THEN 5 ELSE 1 END,
               CASE WHEN b.status IN ('swap_created', 'funding', 'exchanging') THEN %(end)s + interval '30 seconds' END,
               CASE WHEN b.status IN ('swap_created', 'funding', 'exchanging', 'awaiting_approval')
                    THEN b.created_at + interval '6 hours' END,
               b.created_at, b.created_at + interval '40 minutes',
               CASE WHEN b.status = 'completed' THEN b.created_at + interval '40 minutes' END,
               'threshold', b.client_id, NULL, cl.wallet_address, '', cl.payout_currency, cl.payout_network,
               'usdterc20', b.total, b.total, 0, NULL, b.rows,
               CASE WHEN b.status = 'completed' THEN
                   CASE cl.payout_currency
                       WHEN 'eth' THEN round(b.total * 0.99 / pg_temp.seed_eth_usd(
                           extract(epoch FROM b.created_at - %(start)s) / %(span_seconds)s), 12)
                       ELSE round(b.total * 0.99, 6) END END
          FROM (
            SELECT payout_batch_id AS id, min(client_id) AS client_id, sum(credit_usdt) AS total, count(*) AS rows,
                   %(start)s + make_interval(secs => ((payout_batch_id - %(payout_offset)s - 1) / %(threshold_clients)s
                                                      + 1) * %(period_seconds)s
                                                     + mod(payout_batch_id - %(payout_offset)s - 1,
                                                           %(threshold_clients)s) * 10) AS created_at,
                   pg_temp.seed_payout_status(
                       (payout_batch_id - %(payout_offset)s - 1) / %(threshold_clients)s,
                       mod(payout_batch_id - %(payout_offset)s - 1, %(threshold_clients)s)::int,
                       %(start)s + make_interval(secs => ((payout_batch_id - %(payout_offset)s - 1)
                                                          / %(threshold_clients)s + 1) * %(period_seconds)s
                                                         + mod(payout_batch_id - %(payout_offset)s - 1,
                                                               %(threshold_clients)s) * 10),
                       %(latest_since)s, %(failed_payout_every)s) AS status
              FROM payout_accumulation
             WHERE id > %(row_offset)s AND payout_batch_id IS NOT NULL
             GROUP BY payout_batch_id
          ) AS b
          JOIN payments_client AS cl ON cl.id = b.client_id
        """,
        p,
    )
    return cursor.rowcount


def _instant_payouts(cursor: Any, p: dict[str, Any]) -> int:
    """One per finished payment of an instant client: its ETH less the fee, exchanged at once."""
    cursor.execute(
        """
        INSERT INTO payout_batches (id, status, exchange_provider, exchange_id, payin_address, exchange_from_amount,
                                    expected_amount, exchange_valid_until, exchange_status, abandoned_exchange_ids,
                                    host_payment_id, payout_tx_hash, review_reason, last_error, attempts,
                                    next_action_at, deadline_at, created_at, updated_at, completed_at, kind,
                                    client_id, payment_id, wallet_address, payout_extra_id, payout_currency,
                                    payout_network, source_currency, total_usdt, source_amount, fee_amount,
                                    sent_value_usdt, row_count, payout_amount)
        SELECT id, status, 'changenow', 'p' || lpad(to_hex(id), 13, '0'),
               '0x' || substr(md5('payin-p' || id), 1, 20) || substr(md5('payin-p2' || id), 1, 20),
               sent, round(sent_usdt * 0.99, 6), created_at + interval '15 minutes',
               CASE status WHEN 'completed' THEN 'finished' ELSE 'waiting' END, '[]'::jsonb,
               CASE WHEN status = 'completed' THEN %(host_payment_offset)s + %(conversions)s + (id - %(payout_offset)s)
               END,
               CASE WHEN status = 'completed' THEN '0x' || md5('out' || id) || md5('out2' || id) ELSE '' END,
               '', '', CASE WHEN status = 'completed' THEN 5 ELSE 1 END,
               CASE WHEN status <> 'completed' THEN %(end)s + interval '30 seconds' END,
               CASE WHEN status <> 'completed' THEN created_at + interval '6 hours' END,
               created_at, created_at + interval '40 minutes',
               CASE WHEN status = 'completed' THEN created_at + interval '40 minutes' END,
               'instant', client_id, payment_id, wallet_address, '', payout_currency, payout_network,
               'eth', NULL, sent, fee, sent_usdt, 0,
               CASE WHEN status = 'completed' THEN round(sent_usdt * 0.99, 6) END
          FROM (
            SELECT %(payout_offset)s + (%(buckets)s + 1) * %(threshold_clients)s
                   + row_number() OVER (ORDER BY pay.id) AS id,
                   CASE WHEN pay.created_at > %(open_since)s THEN 'swap_created' ELSE 'completed' END AS status,
                   pay.id AS payment_id, pay.client_id, pay.created_at + interval '1 minute' AS created_at,
                   cl.wallet_address, cl.payout_currency, cl.payout_network,
                   pay.outcome_amount - fee.eth AS sent, fee.eth AS fee,
                   round((pay.outcome_amount - fee.eth) * pg_temp.seed_eth_usd(
                       extract(epoch FROM pay.created_at - %(start)s) / %(span_seconds)s), 6) AS sent_usdt
              FROM payments_payment AS pay
              JOIN payments_client AS cl ON cl.id = pay.client_id AND cl.payout_strategy = 'instant'
              CROSS JOIN LATERAL (
                  SELECT round(pay.outcome_amount * coalesce(cl.fee_percent_override, 3.00) / 100, 18) AS eth
              ) AS fee
             WHERE pay.id > %(payment_offset)s AND pay.routing_status = 'routed'
          ) AS instant
        """,
        p,
    )
    return cursor.rowcount


def _host_payments(cursor: Any, p: dict[str, Any]) -> int:
    """The host payment each batch points at: ETH for a conversion or an instant payout, USDT
    for a threshold payout; confirmed, or broadcast while its batch is funding."""
    cursor.execute(
        """
        INSERT INTO payouts_hostpayment (id, owner_kind, chain, asset, status, amount, amount_base_units,
                                         from_address, to_address, tx_hash, raw_transaction, confirmations,
                                         block_number, network_fee, last_error, waiting_for, attempts,
                                         next_action_at, deadline_at, created_at, updated_at, signed_at,
                                         broadcast_at, confirmed_at)
        SELECT host_payment_id, kind, 'eth', asset, hp_status, amount,
               amount * CASE asset WHEN 'eth' THEN 1000000000000000000 ELSE 1000000 END,
               %(hot_wallet)s, payin_address,
               '0x' || md5('tx' || host_payment_id) || md5('tx2' || host_payment_id),
               '0x02f8b1' || md5('raw' || host_payment_id) || md5('raw2' || host_payment_id),
               CASE hp_status WHEN 'confirmed' THEN 12 ELSE 0 END,
               CASE hp_status WHEN 'confirmed' THEN 17000000 + host_payment_id END,
               CASE hp_status WHEN 'confirmed' THEN 21000 * 12000000000::numeric END,
               '', '', 1,
               CASE hp_status WHEN 'broadcast' THEN %(end)s + interval '15 seconds' END,
               CASE hp_status WHEN 'broadcast' THEN created_at + interval '1 hour' END,
               created_at + interval '2 minutes', created_at + interval '6 minutes',
               created_at + interval '2 minutes', created_at + interval '2 minutes',
               CASE hp_status WHEN 'confirmed' THEN created_at + interval '5 minutes' END
          FROM (
            SELECT host_payment_id, 'conversion' AS kind, 'eth' AS asset, exchange_from_amount AS amount,
                   payin_address, created_at,
                   CASE status WHEN 'funding' THEN 'broadcast' ELSE 'confirmed' END AS hp_status
              FROM batch_conversions WHERE id > %(conversion_offset)s AND host_payment_id IS NOT NULL
            UNION ALL
            SELECT host_payment_id, 'payout', CASE kind WHEN 'threshold' THEN 'usdt' ELSE 'eth' END, source_amount,
                   payin_address, created_at,
                   CASE status WHEN 'funding' THEN 'broadcast' ELSE 'confirmed' END
              FROM payout_batches WHERE id > %(payout_offset)s AND host_payment_id IS NOT NULL
          ) AS funded
         ORDER BY created_at
        """,
        p,
    )
    return cursor.rowcount


def _host_payment_records(cursor: Any, p: dict[str, Any]) -> int:
    """The chain adapter's side of each signed host payment: its nonce (in time order, from the
    hot wallet's sender row) and its one signed candidate."""
    cursor.execute(
        """
        INSERT INTO evm_senders (chain, address, next_nonce, updated_at)
        VALUES ('eth', %(hot_wallet)s, 0, now()) ON CONFLICT (chain, address) DO NOTHING;
        INSERT INTO evm_transfers (host_payment_id, chain, sender, nonce, gas_limit, max_fee_per_gas,
                                   max_priority_fee_per_gas)
        SELECT hp.id, 'eth', %(hot_wallet)s,
               (SELECT next_nonce FROM evm_senders WHERE chain = 'eth' AND address = %(hot_wallet)s)
               + row_number() OVER (ORDER BY hp.created_at, hp.id) - 1,
               CASE hp.asset WHEN 'eth' THEN 21000 ELSE 65000 END, 30000000000, 1500000000
          FROM payouts_hostpayment AS hp WHERE hp.id > %(host_payment_offset)s;
        """,
        p,
    )
    transfers = cursor.rowcount
    cursor.execute(
        """
        UPDATE evm_senders SET next_nonce = next_nonce + %(transfers)s, updated_at = now()
         WHERE chain = 'eth' AND address = %(hot_wallet)s;
        INSERT INTO payouts_hostpaymentcandidate (host_payment_id, tx_hash, raw_transaction, fee_details, created_at)
        SELECT id, tx_hash, raw_transaction,
               jsonb_build_object('max_fee_per_gas', '30000000000', 'max_priority_fee_per_gas', '1500000000'),
               signed_at
          FROM payouts_hostpayment WHERE id > %(host_payment_offset)s ORDER BY id;
        """,
        {**p, "transfers": transfers},
    )
    return transfers


# Each batch's and host payment's transitions, in order; a batch's trail ends at its status.
CONVERSION_PATH = ["created", "swap_created", "funding", "funded", "exchanging", "completed"]
HOST_PAYMENT_PATH = ["created", "signed", "broadcast", "confirmed"]


def _audit_events(cursor: Any, p: dict[str, Any]) -> int:
    cursor.execute(
        """
        INSERT INTO operations_auditevent (subject_type, subject_id, action, from_status, to_status, actor_id,
                                           reason, created_at)
        SELECT subject_type, subject_id, 'transition', path[step - 1], path[step], NULL,
               CASE WHEN path[step] IN ('failed', 'cancelled') THEN reason ELSE '' END,
               created_at + make_interval(mins => step * 4)
          FROM (
            SELECT 'conversion' AS subject_type, id AS subject_id, created_at, review_reason || last_error AS reason,
                   CASE status WHEN 'failed' THEN (%(batch_path)s::text[])[1:4] || ARRAY['failed']
                               WHEN 'cancelled' THEN ARRAY['created', 'swap_created', 'cancelled']
                               ELSE (%(batch_path)s::text[])[1:array_position(%(batch_path)s::text[], status)] END
                       AS path
              FROM batch_conversions WHERE id > %(conversion_offset)s
            UNION ALL
            SELECT 'payout', id, created_at, review_reason,
                   CASE status WHEN 'failed' THEN (%(batch_path)s::text[])[1:4] || ARRAY['failed']
                               WHEN 'awaiting_approval' THEN ARRAY['created', 'awaiting_approval']
                               ELSE (%(batch_path)s::text[])[1:array_position(%(batch_path)s::text[], status)] END
              FROM payout_batches WHERE id > %(payout_offset)s
            UNION ALL
            SELECT 'host_payment', id, created_at, '',
                   (%(host_path)s::text[])[1:array_position(%(host_path)s::text[], status)]
              FROM payouts_hostpayment WHERE id > %(host_payment_offset)s
          ) AS subjects
          CROSS JOIN LATERAL generate_series(2, cardinality(path)) AS step
         ORDER BY created_at + make_interval(mins => step * 4)
        """,
        {**p, "batch_path": CONVERSION_PATH, "host_path": HOST_PAYMENT_PATH},
    )
    return cursor.rowcount


def _ipn_events(cursor: Any, p: dict[str, Any]) -> int:
    """Event j belongs to payment (j - 1) * payments / events + 1, in payment (time) order: its
    first one the first notification (waiting), its second the final status, any more a
    duplicate of it. One in a thousand is an unsigned request, refused and kept without its body."""
    cursor.execute(
        """
        INSERT INTO payments_paymentevent (id, payment_id, provider_payment_id, reported_status, outcome, reason,
                                           signature_valid, body, body_sha256, body_size, remote_addr, received_at)
        SELECT %(event_offset)s + j,
               CASE WHEN refused THEN NULL ELSE id END, provider_payment_id, reported,
               CASE WHEN refused THEN 'rejected_signature'
                    WHEN step = 0 OR (step = 1 AND status <> 'waiting') THEN 'applied' ELSE 'duplicate' END,
               CASE WHEN refused THEN 'signature does not match the body'
                    WHEN step = 0 THEN '-> waiting'
                    WHEN step = 1 AND status <> 'waiting' THEN 'waiting -> ' || status
                    ELSE 'already ' || status END,
               NOT refused, CASE WHEN refused THEN '' ELSE body END,
               encode(sha256(convert_to(body, 'UTF8')), 'hex'), octet_length(body),
               CASE WHEN refused THEN '203.0.113.7'::inet ELSE '144.76.201.30'::inet END,
               least(created_at + make_interval(mins => (step * 7)::int), %(end)s)
          FROM (
            SELECT pay.id, pay.provider_payment_id, pay.status, pay.created_at, j, j - first_j AS step,
                   mod(j, 1000) = 500 AS refused,
                   CASE WHEN j = first_j THEN 'waiting' ELSE pay.status END AS reported,
                   '{"actually_paid":' || pay.actually_paid || ',"order_id":"' || pay.order_id
                   || '","outcome_amount":' || pay.outcome_amount || ',"outcome_currency":"' || pay.outcome_currency
                   || '","pay_amount":' || pay.pay_amount || ',"pay_currency":"' || pay.pay_currency
                   || '","payment_id":' || pay.provider_payment_id || ',"payment_status":"'
                   || CASE WHEN j = first_j THEN 'waiting' ELSE pay.status END
                   || '","price_amount":' || pay.price_amount || ',"price_currency":"usd"}' AS body
              FROM payments_payment AS pay
             CROSS JOIN LATERAL (
                 SELECT ((pay.id - %(payment_offset)s - 1) * %(events)s + %(payments)s - 1) / %(payments)s + 1
                            AS first_j,
                        ((pay.id - %(payment_offset)s) * %(events)s + %(payments)s - 1) / %(payments)s AS last_j
             ) AS range_of
             CROSS JOIN LATERAL generate_series(range_of.first_j, range_of.last_j) AS j
             WHERE pay.id > %(payment_offset)s
           OFFSET 0) AS events
        """,
        p,
    )
    return cursor.rowcount


def _ipn_event_counts(cursor: Any, p: dict[str, Any]) -> int:
    """The IPN counters /metrics exports (payments.ipn_counters), which the intake keeps as it
    records each event: here the events just written, counted once, in their transaction."""
    cursor.execute(
        """
        INSERT INTO payments_ipneventcount (outcome, shard, total)
        SELECT outcome, 0, count(*) FROM payments_paymentevent WHERE id > %(event_offset)s GROUP BY outcome
        ON CONFLICT (outcome, shard) DO UPDATE SET total = payments_ipneventcount.total + excluded.total
        """,
        p,
    )
    return cursor.rowcount


def _drop_staging(cursor: Any, p: dict[str, Any]) -> int:
    cursor.execute("DROP TABLE IF EXISTS seed_scale_rows, seed_scale_conversions")
    return 0


def _finish(cursor: Any, p: dict[str, Any]) -> int:
    """Sequences past the explicit ids, and the planner's statistics, as after a real year."""
    for table in OFFSET_TABLES.values():
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest(1, (SELECT max(id) FROM {table})))"  # noqa: S608
        )
    return 0


def _analyze(cursor: Any, p: dict[str, Any]) -> int:
    tables = [*OFFSET_TABLES.values(), "payouts_hostpaymentcandidate", "evm_transfers"]
    cursor.execute(f"ANALYZE {', '.join(tables)}")
    return 0


FIRST: list[list[Step]] = [[("clients", _clients)], [("payments", _payments)]]
# Two independent branches over the payments, each on a connection of its own.
CONCURRENT: list[list[list[Step]]] = [
    [[("IPN events", _ipn_events), ("IPN event counts", _ipn_event_counts)]],
    [
        [("staging: rows", _stage_rows), ("staging: conversions", _stage_conversions)],
        [("accumulation rows", _accumulation)],
        [
            ("conversions", _conversions),
            ("threshold payouts", _threshold_payouts),
            ("instant payouts", _instant_payouts),
            ("host payments", _host_payments),
            ("evm transfers, candidates", _host_payment_records),
        ],
        [("audit events", _audit_events)],
        [("drop staging", _drop_staging)],
    ],
]
LAST: list[list[Step]] = [[("sequences", _finish)]]


def analyze(progress: Callable[[str], None] = logger.info) -> float:
    """ANALYZE outside the steps' transactions (it may not run inside one with VACUUM; plain
    ANALYZE could, but keeping it apart gives it its own timing line)."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        _analyze(cursor, {})
    elapsed = time.monotonic() - started
    progress(f"{'analyze':<32} {'':>12}      {elapsed:8.1f} s")
    return elapsed


def describe(size: SeedSize) -> str:
    return (
        f"{size.payments:,} payments, ~{size.ipn_events:,} IPN events, {size.conversions:,} conversions, "
        f"~{size.threshold_payouts:,} threshold + ~{size.instant_payouts:,} instant payouts, {size.clients} clients"
    )
