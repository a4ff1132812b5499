from decimal import Decimal

from django.db.models import Count, QuerySet, Sum

from .models import PayoutAccumulation

TOTAL_FIELDS = ("gross_usd", "fee_usd", "net_usd", "usdt_amount", "fee_usdt", "credit_usdt")


def accumulation_totals(rows: QuerySet[PayoutAccumulation]) -> dict[str, Decimal | int]:
    """Row count and money sums of a (filtered) set of accumulation rows, in one query."""
    totals = rows.order_by().aggregate(rows=Count("id"), **{name: Sum(name) for name in TOTAL_FIELDS})
    return {name: (value if value is not None else Decimal(0)) for name, value in totals.items()}
