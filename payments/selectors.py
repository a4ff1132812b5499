from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Count, QuerySet, Sum

from .accumulation import unclaimed_credit
from .models import AccumulationStatus, PayoutAccumulation, PayoutStrategy, SourceAsset

PAYMENT_SUBJECT = "payment"  # a payment's events in the audit trail (operator actions on held payments)

TOTAL_FIELDS = ("gross_usd", "fee_usd", "net_usd", "usdt_amount", "fee_usdt", "credit_usdt")


@dataclass(frozen=True)
class PendingTotals:
    rows: int
    net_usd: Decimal
    eth: Decimal


@dataclass(frozen=True)
class ConversionCredits:
    rows: int
    usdt: Decimal
    fee: Decimal
    credit: Decimal


def accumulation_totals(rows: QuerySet[PayoutAccumulation]) -> dict[str, Decimal | int]:
    """Row count and money sums of a (filtered) set of accumulation rows, in one query."""
    totals = rows.order_by().aggregate(rows=Count("id"), **{name: Sum(name) for name in TOTAL_FIELDS})
    return {name: (value if value is not None else Decimal(0)) for name, value in totals.items()}


def pending_conversion_totals() -> PendingTotals:
    """What a micro-batch conversion would claim right now."""
    pending = PayoutAccumulation.objects.filter(
        status=AccumulationStatus.PENDING, source_asset=SourceAsset.ETH
    ).aggregate(net=Sum("net_usd"), rows=Count("id"), eth=Sum("source_amount"))
    return PendingTotals(rows=pending["rows"], net_usd=pending["net"] or Decimal(0), eth=pending["eth"] or Decimal(0))


def distribution_weights(conversion_id: int, chunk_rows: int) -> Iterator[list[tuple[int, int]]]:
    """A conversion's swapping rows as (row id, ETH in base units), `chunk_rows` at a time: memory stays
    bounded by a chunk. Streamed from a server-side cursor (call inside a
    transaction) in the order the scan finds them (the table's: no sort; the distribution breaks
    its ties by id in SQL), with the base units computed exactly in SQL (18 dp column, so the product is
    an integer)."""
    with connection.chunked_cursor() as cursor:
        cursor.execute(
            """
            SELECT id, (source_amount * 1000000000000000000)::numeric(78, 0)::text
              FROM payout_accumulation
             WHERE batch_conversion_id = %s AND status = %s
            """,
            [conversion_id, AccumulationStatus.SWAPPING],
        )
        while rows := cursor.fetchmany(chunk_rows):
            yield [(row_id, int(units)) for row_id, units in rows]


def conversion_credits(conversion_id: int) -> ConversionCredits:
    """What the database holds for a conversion's converted rows (the invariant's check)."""
    totals = PayoutAccumulation.objects.filter(
        batch_conversion_id=conversion_id, status=AccumulationStatus.CONVERTED
    ).aggregate(rows=Count("id"), usdt=Sum("usdt_amount"), fee=Sum("fee_usdt"), credit=Sum("credit_usdt"))
    return ConversionCredits(
        rows=totals["rows"],
        usdt=totals["usdt"] or Decimal(0),
        fee=totals["fee"] or Decimal(0),
        credit=totals["credit"] or Decimal(0),
    )


def unclaimed_credit_by_client() -> dict[int, Decimal]:
    """Converted, unclaimed client credit of each active threshold client, by client id."""
    balances = (
        unclaimed_credit(
            PayoutAccumulation.objects.filter(client__is_active=True, client__payout_strategy=PayoutStrategy.THRESHOLD)
        )
        .values("client_id")
        .annotate(credit=Sum("credit_usdt"))
        .order_by("client_id")
    )
    return {b["client_id"]: b["credit"] for b in balances}


def rows_of_conversion(conversion_id: int) -> QuerySet[PayoutAccumulation]:
    return PayoutAccumulation.objects.filter(batch_conversion_id=conversion_id).select_related("client").order_by("id")


def rows_of_payout(payout_batch_id: int) -> QuerySet[PayoutAccumulation]:
    return PayoutAccumulation.objects.filter(payout_batch_id=payout_batch_id).select_related("payment").order_by("id")


def payment_ids_of_payouts(payout_batch_ids: list[int]) -> set[int]:
    """The payments whose accumulation rows these payouts claimed (paid, or are paying)."""
    return set(
        PayoutAccumulation.objects.filter(payout_batch_id__in=payout_batch_ids).values_list("payment_id", flat=True)
    )


def client_balance(client_id: int) -> dict[str, Decimal]:
    """A client's money by state: pending USD (awaiting conversion), and USDT credit converted
    but unclaimed, in a payout, and paid out."""
    rows = PayoutAccumulation.objects.filter(client_id=client_id).order_by()
    pending_usd = rows.filter(status="pending").aggregate(total=Sum("net_usd"))["total"] or Decimal(0)
    by_status = dict(
        rows.filter(status__in=["converted", "in_payout", "paid_out"])
        .values_list("status")
        .annotate(total=Sum("credit_usdt"))
        .values_list("status", "total")
    )
    return {
        "pending_usd": pending_usd,
        "converted_usdt": by_status.get("converted") or Decimal(0),
        "in_payout_usdt": by_status.get("in_payout") or Decimal(0),
        "paid_out_usdt": by_status.get("paid_out") or Decimal(0),
    }
