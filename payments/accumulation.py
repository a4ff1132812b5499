"""The life of a payout_accumulation row after intake, owned here and called by the apps that
batch the rows (batching, payouts). Each transition is one set-based statement:

    pending --claim_for_conversion_when_due--> swapping --credit_staged_conversion--> converted
       ^-----release_from_conversion-----------------'                                    |
    converted --claim_for_payout--> in_payout --mark_paid_out--> paid_out
       ^--------release_from_payout-----'

Released rows go back one step, never skip; each statement only touches rows still in the state
it expects, so a concurrent change shows up as a count the caller can check.
"""

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from .models import AccumulationStatus, PaymentStatus, PayoutAccumulation, SourceAsset


@dataclass(frozen=True)
class ClaimedForConversion:
    rows: int
    gross_usd: Decimal
    net_usd: Decimal
    eth: Decimal


@dataclass(frozen=True)
class ClaimedForPayout:
    rows: int
    credit_usdt: Decimal
    # Under an exchange maximum: whether rows were left for a later payout, and how many are
    # alone over the maximum (never claimed).
    capped: bool = False
    rows_over_maximum: int = 0


def _oldest_rows_up_to(rows: QuerySet[PayoutAccumulation], amount_field: str, at_most: Decimal) -> list[int]:
    """The ids of the oldest of `rows` whose `amount_field` adds up to at most `at_most`,
    passing over any row that alone is larger (it can never fit)."""
    ids, total = [], Decimal(0)
    fitting = rows.filter(**{f"{amount_field}__lte": at_most}).order_by("pk").values_list("pk", amount_field)
    for row_id, amount in fitting:
        if total + amount > at_most:
            break
        ids.append(row_id)
        total += amount
    return ids


@dataclass(frozen=True)
class ConversionClaim:
    pending_rows: int  # what was pending when the statement looked (its snapshot)
    pending_net_usd: Decimal
    pending_eth: Decimal
    conversion_id: int | None  # the id the claimed rows now carry; None if nothing was claimed
    claimed: ClaimedForConversion
    # Under an exchange maximum: the ETH of the oldest pending rows that fit under it (all of
    # the pending ETH without a maximum), and how many rows are alone over it (never claimed).
    fitting_eth: Decimal = Decimal(0)
    rows_over_maximum: int = 0


def claim_for_conversion_when_due(
    *,
    net_usd_at_least: Decimal,
    eth_at_least: Decimal | None,
    conversion_table: str,
    eth_at_most: Decimal | None = None,
) -> ConversionClaim:
    """PostgreSQL, in one statement: if the ETH rows pending at this instant add up to at least
    `net_usd_at_least` net USD and `eth_at_least` ETH (None: unknown, never), claim every one of
    them for a new conversion whose id is drawn from `conversion_table`'s id sequence, and return
    what was pending and the totals of exactly the rows claimed (summed in SQL, exactly). The
    caller holds the conversion check's lock and creates the conversion with that id and those
    totals in the same transaction.

    With `eth_at_most` (the exchange's maximum for one exchange) the batch is capped rather than
    split: only the oldest pending rows whose ETH adds up to at most that are claimed (their ETH
    must still reach `eth_at_least`), and the rest stay pending for the next check. A row that
    alone is over the maximum is passed over (it could never be exchanged) and counted.

    The decision is one row computed before the UPDATE writes anything: a check below the
    threshold writes nothing, and draws no id (the id is drawn in the decision's CASE, only when it
    is yes). Each row is locked by the UPDATE itself, which re-reads a row another transaction
    changed meanwhile and claims it only if it is still pending."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_ALL_PENDING if eth_at_most is None else _CLAIM_PENDING_UP_TO_MAXIMUM,
            {
                "pending": AccumulationStatus.PENDING,
                "eth": SourceAsset.ETH,
                "swapping": AccumulationStatus.SWAPPING,
                "table": conversion_table,
                "now": now,
                "net_usd": net_usd_at_least,
                "eth_min": eth_at_least,
                "eth_max": eth_at_most,
            },
        )
        (pending_rows, pending_net, pending_eth, conversion_id, rows, gross_usd, net_usd, eth, fitting_eth, over) = (
            cursor.fetchone()
        )
    return ConversionClaim(
        pending_rows=pending_rows,
        pending_net_usd=pending_net,
        pending_eth=pending_eth,
        conversion_id=conversion_id if rows else None,
        claimed=ClaimedForConversion(rows=rows, gross_usd=gross_usd, net_usd=net_usd, eth=eth),
        fitting_eth=fitting_eth,
        rows_over_maximum=over,
    )


_CLAIM_ALL_PENDING = """
            WITH pending AS (
                SELECT count(*) AS rows, coalesce(sum(net_usd), 0) AS net_usd,
                       coalesce(sum(source_amount), 0) AS eth
                  FROM payout_accumulation
                 WHERE status = %(pending)s AND source_asset = %(eth)s
            ), decision AS (
                SELECT p.*,
                       CASE WHEN p.rows > 0 AND p.net_usd >= %(net_usd)s AND p.eth >= %(eth_min)s
                            THEN nextval(pg_get_serial_sequence(%(table)s, 'id')) END AS conversion_id
                  FROM pending AS p
            ), claimed AS (
                UPDATE payout_accumulation
                   SET status = %(swapping)s, batch_conversion_id = (SELECT conversion_id FROM decision),
                       updated_at = %(now)s
                 WHERE status = %(pending)s AND source_asset = %(eth)s
                   AND (SELECT conversion_id IS NOT NULL FROM decision)
             RETURNING gross_usd, net_usd, source_amount
            )
            SELECT d.rows, d.net_usd, d.eth, d.conversion_id, c.*, d.eth, 0
              FROM decision AS d,
                   (SELECT count(*), coalesce(sum(gross_usd), 0), coalesce(sum(net_usd), 0),
                           coalesce(sum(source_amount), 0)
                      FROM claimed) AS c
            """

# The same decision and claim under the exchange's maximum. `eligible` numbers the pending rows
# that can fit at all by a running sum in id order (oldest first); the claim takes those whose
# running sum is within the maximum, i.e. every eligible row up to the last that fits. The UPDATE
# re-checks each row as the plain claim does, so its sums are of exactly the rows claimed.
_CLAIM_PENDING_UP_TO_MAXIMUM = """
            WITH pending AS (
                SELECT count(*) AS rows, coalesce(sum(net_usd), 0) AS net_usd,
                       coalesce(sum(source_amount), 0) AS eth,
                       count(*) FILTER (WHERE source_amount > %(eth_max)s) AS over_max
                  FROM payout_accumulation
                 WHERE status = %(pending)s AND source_asset = %(eth)s
            ), eligible AS (
                SELECT id, source_amount, sum(source_amount) OVER (ORDER BY id) AS running
                  FROM payout_accumulation
                 WHERE status = %(pending)s AND source_asset = %(eth)s AND source_amount <= %(eth_max)s
            ), fitting AS (
                SELECT count(*) AS rows, coalesce(sum(source_amount), 0) AS eth, max(id) AS last_id
                  FROM eligible
                 WHERE running <= %(eth_max)s
            ), decision AS (
                SELECT p.rows, p.net_usd, p.eth, p.over_max, f.eth AS fitting_eth, f.last_id,
                       CASE WHEN f.rows > 0 AND p.net_usd >= %(net_usd)s AND f.eth >= %(eth_min)s
                            THEN nextval(pg_get_serial_sequence(%(table)s, 'id')) END AS conversion_id
                  FROM pending AS p, fitting AS f
            ), claimed AS (
                UPDATE payout_accumulation
                   SET status = %(swapping)s, batch_conversion_id = (SELECT conversion_id FROM decision),
                       updated_at = %(now)s
                 WHERE status = %(pending)s AND source_asset = %(eth)s
                   AND source_amount <= %(eth_max)s AND id <= (SELECT last_id FROM decision)
                   AND (SELECT conversion_id IS NOT NULL FROM decision)
             RETURNING gross_usd, net_usd, source_amount
            )
            SELECT d.rows, d.net_usd, d.eth, d.conversion_id, c.*, d.fitting_eth, d.over_max
              FROM decision AS d,
                   (SELECT count(*), coalesce(sum(gross_usd), 0), coalesce(sum(net_usd), 0),
                           coalesce(sum(source_amount), 0)
                      FROM claimed) AS c
            """


def release_from_conversion(*, conversion_id: int) -> int:
    """Rows of a conversion that sent nothing go back to pending."""
    return PayoutAccumulation.objects.filter(
        batch_conversion_id=conversion_id, status=AccumulationStatus.SWAPPING
    ).update(status=AccumulationStatus.PENDING, batch_conversion_id=None, updated_at=timezone.now())


def stage_conversion_shares(chunks: Iterable[Sequence[tuple[int, int, int]]]) -> int:
    """PostgreSQL: COPY (row id, floor units, remainder) triples into the session's scratch
    table `conversion_shares` (session-local, dropped at commit), one COPY per chunk so memory
    stays bounded by a chunk; returns how many were staged.
    `credit_staged_conversion` applies them."""
    staged = 0
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.conversion_shares")
        cursor.execute(
            "CREATE TEMP TABLE conversion_shares (id bigint NOT NULL, units bigint NOT NULL, rem numeric NOT NULL) "
            "ON COMMIT DROP"
        )
        for chunk in chunks:
            if not chunk:
                continue
            buffer = io.StringIO("".join(f"{row_id}\t{units}\t{rem}\n" for row_id, units, rem in chunk))
            cursor.copy_expert("COPY conversion_shares (id, units, rem) FROM STDIN", buffer)
            staged += len(chunk)
        cursor.execute("ANALYZE conversion_shares")
    return staged


def staged_remainder_at(*, low: int, high: int, offset: int) -> tuple[int, int] | None:
    """PostgreSQL, after `stage_conversion_shares`: the (remainder, row id) at 0-based `offset`
    among the staged rows whose remainder is in [low, high), largest remainder first, ties to the
    lower id; None if there are not that many. The caller narrows [low, high) to the few rows
    around the cut, so this sorts those rows only, never the whole conversion."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rem, id FROM conversion_shares WHERE rem >= %s AND rem < %s "
            "ORDER BY rem DESC, id OFFSET %s LIMIT 1",
            [low, high, offset],
        )
        found = cursor.fetchone()
    return None if found is None else (int(found[0]), int(found[1]))


def credit_staged_conversion(*, conversion_id: int, cut_remainder: int, cut_id: int) -> int:
    """PostgreSQL, after `stage_conversion_shares`: in one statement, give one more unit to every
    staged row at or above the cut (remainder, then lower id first: a larger remainder, or the
    cut's remainder and an id up to the cut's), write each row's USDT, its fee (the row's fee %
    snapshot, half-up at 6 dp, in integer units) and its credit, and mark it converted; only rows
    still swapping in this conversion are touched. Returns how many were.

    A plain join of the staged rows, in the order they were staged (the table's), so the rows'
    new versions and their index entries are written in that order."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE payout_accumulation AS acc
               SET status = %(converted)s, usdt_amount = p.units * 0.000001,
                   fee_usdt = div(p.units::numeric * acc.fee_percent * 100 + 5000, 10000) * 0.000001,
                   credit_usdt = (p.units - div(p.units::numeric * acc.fee_percent * 100 + 5000, 10000)) * 0.000001,
                   converted_at = %(now)s, updated_at = %(now)s
              FROM (SELECT id,
                           units + CASE WHEN rem > %(rem)s OR (rem = %(rem)s AND id <= %(id)s) THEN 1 ELSE 0 END
                               AS units
                      FROM conversion_shares) AS p
             WHERE acc.id = p.id AND acc.batch_conversion_id = %(conversion)s AND acc.status = %(swapping)s
            """,
            {
                "converted": AccumulationStatus.CONVERTED,
                "now": now,
                "rem": cut_remainder,
                "id": cut_id,
                "conversion": conversion_id,
                "swapping": AccumulationStatus.SWAPPING,
            },
        )
        return cursor.rowcount


def claim_for_payout(
    *, client_id: int, payout_batch_id: int, credit_at_most: Decimal | None = None
) -> ClaimedForPayout:
    """Claim exactly this client's converted, unclaimed rows for one payout batch; the total is
    the credit of exactly the claimed rows. With `credit_at_most` (the exchange's maximum) only
    the oldest rows whose credit fits under it, the rest left for the next payout; a row alone
    over it is passed over and counted."""
    rows = unclaimed_credit(PayoutAccumulation.objects.filter(client_id=client_id))
    capped, over_maximum = False, 0
    if credit_at_most is not None:
        fitting = _oldest_rows_up_to(rows, "credit_usdt", credit_at_most)
        over_maximum = rows.filter(credit_usdt__gt=credit_at_most).count()
        capped = len(fitting) < rows.count()
        rows = rows.filter(pk__in=fitting)
    claimed = rows.update(
        status=AccumulationStatus.IN_PAYOUT, payout_batch_id=payout_batch_id, updated_at=timezone.now()
    )
    credits = list(
        PayoutAccumulation.objects.filter(payout_batch_id=payout_batch_id).values_list("credit_usdt", flat=True)
    )
    if None in credits:  # accum_converted_has_usdt rules this out; never pay out a short total
        raise ValueError(f"payout batch #{payout_batch_id} claimed a row without a credit")
    return ClaimedForPayout(
        rows=claimed,
        credit_usdt=sum((c for c in credits if c is not None), Decimal(0)),
        capped=capped,
        rows_over_maximum=over_maximum,
    )


def unclaimed_credit(rows: QuerySet[PayoutAccumulation]) -> QuerySet[PayoutAccumulation]:
    """Rows a client payout may claim: converted, unclaimed, and not of a payment NOWPayments
    refunded after it finished (its credit must never be paid out)."""
    return rows.filter(status=AccumulationStatus.CONVERTED, payout_batch_id__isnull=True).exclude(
        payment__status=PaymentStatus.REFUNDED
    )


def mark_paid_out(*, payout_batch_id: int) -> int:
    now = timezone.now()
    return PayoutAccumulation.objects.filter(
        payout_batch_id=payout_batch_id, status=AccumulationStatus.IN_PAYOUT
    ).update(status=AccumulationStatus.PAID_OUT, paid_out_at=now, updated_at=now)


def release_from_payout(*, payout_batch_id: int) -> int:
    """Rows of a payout that sent nothing go back to the client's converted balance."""
    return PayoutAccumulation.objects.filter(
        payout_batch_id=payout_batch_id, status=AccumulationStatus.IN_PAYOUT
    ).update(status=AccumulationStatus.CONVERTED, payout_batch_id=None, updated_at=timezone.now())
