from decimal import Decimal

from django.db.models import Count, QuerySet, Sum

from .models import PayoutAccumulation

TOTAL_FIELDS = ("gross_usd", "fee_usd", "net_usd", "usdt_amount", "fee_usdt", "credit_usdt")


def accumulation_totals(rows: QuerySet[PayoutAccumulation]) -> dict[str, Decimal | int]:
    """Row count and money sums of a (filtered) set of accumulation rows, in one query."""
    totals = rows.order_by().aggregate(rows=Count("id"), **{name: Sum(name) for name in TOTAL_FIELDS})
    return {name: (value if value is not None else Decimal(0)) for name, value in totals.items()}


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
