"""What the overview reads: money by state, the micro-batch threshold's progress, each client's
balance against its threshold, and the activity of the last days. Each is a set-based aggregate
(a handful of queries whatever the number of rows), never a loop over rows in Python."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, Exists, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, Payment, PaymentStatus, PayoutAccumulation, PayoutStrategy
from payments.selectors import pending_conversion_totals
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch, PayoutKind
from pgp_project.operations.selectors import get_runtime_settings

ZERO = Decimal(0)
S = AccumulationStatus


def _sum(field: str, condition: Q) -> Coalesce:
    return Coalesce(Sum(field, filter=condition), Value(ZERO), output_field=DecimalField())


def start_of_today(now: datetime) -> datetime:
    """Midnight in the configured timezone (the day the operator reads "today" as)."""
    return timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class MoneyByState:
    pending_rows: int
    pending_usd: Decimal  # net USD awaiting conversion
    pending_eth: Decimal
    swapping_eth: Decimal  # claimed by a conversion under way
    converted_usdt: Decimal  # client credit converted, not yet claimed by a payout
    in_payout_usdt: Decimal  # claimed by a client payout under way
    held_rows: int
    held_usd: Decimal
    paid_out_today_usdt: Decimal  # threshold payouts (USDT credit paid out)
    paid_out_week_usdt: Decimal
    instant_paid_today: dict[str, Decimal]  # instant payouts completed, by the currency they sent
    instant_paid_week: dict[str, Decimal]


def money_by_state(now: datetime | None = None) -> MoneyByState:
    """Two aggregate queries: the accumulation rows by state, and the instant payouts completed."""
    now = now or timezone.now()
    today, week = start_of_today(now), now - timedelta(days=7)
    paid = Q(status=S.PAID_OUT)
    # Every state but paid_out from the open-rows index (a set that stays small); paid out from
    # the paid-out-time index, only the last days. Both exact, whatever the table's size.
    rows = (
        PayoutAccumulation.objects.exclude(status=S.PAID_OUT)
        .order_by()
        .aggregate(
            pending_rows=Count("id", filter=Q(status=S.PENDING)),
            pending_usd=_sum("net_usd", Q(status=S.PENDING)),
            pending_eth=_sum("source_amount", Q(status=S.PENDING)),
            swapping_eth=_sum("source_amount", Q(status=S.SWAPPING)),
            # What a payout may claim: converted, unclaimed (payments.accumulation.unclaimed_credit).
            converted_usdt=_sum("credit_usdt", Q(status=S.CONVERTED, payout_batch_id__isnull=True)),
            in_payout_usdt=_sum("credit_usdt", Q(status=S.IN_PAYOUT)),
            held_rows=Count("id", filter=Q(status=S.HELD)),
            held_usd=_sum("net_usd", Q(status=S.HELD)),
        )
    )
    rows |= PayoutAccumulation.objects.filter(paid, paid_out_at__gte=min(today, week)).aggregate(
        paid_out_today_usdt=_sum("credit_usdt", Q(paid_out_at__gte=today)),
        paid_out_week_usdt=_sum("credit_usdt", Q(paid_out_at__gte=week)),
    )
    instant = (
        PayoutBatch.objects.filter(
            status=BatchStatus.COMPLETED,
            kind__in=[PayoutKind.INSTANT, PayoutKind.INSTANT_MERGED],
            completed_at__gte=min(today, week),
        )
        .values("source_currency")
        .annotate(
            today=_sum("source_amount", Q(completed_at__gte=today)),
            week=_sum("source_amount", Q(completed_at__gte=week)),
        )
        .order_by("source_currency")
    )
    by_currency = [(row["source_currency"], row["today"], row["week"]) for row in instant]
    return MoneyByState(
        **rows,
        instant_paid_today={currency: t for currency, t, _ in by_currency if t},
        instant_paid_week={currency: w for currency, _, w in by_currency if w},
    )


@dataclass(frozen=True)
class MicroBatchProgress:
    pending_rows: int
    pending_net_usd: Decimal
    pending_eth: Decimal
    threshold_usd: Decimal

    @property
    def percent(self) -> int:
        if self.threshold_usd <= 0:
            return 100
        return min(100, int(self.pending_net_usd * 100 / self.threshold_usd))


def micro_batch_progress() -> MicroBatchProgress:
    """Pending net USD against the threshold a conversion starts at (what the check compares)."""
    pending = pending_conversion_totals()
    return MicroBatchProgress(
        pending_rows=pending.rows,
        pending_net_usd=pending.net_usd,
        pending_eth=pending.eth,
        threshold_usd=get_runtime_settings().micro_batch_threshold_usd,
    )


@dataclass(frozen=True)
class ClientBalance:
    client_id: int
    name: str
    converted_usdt: Decimal  # unclaimed credit: what the payout check compares with the threshold
    pending_usd: Decimal  # net USD still awaiting conversion
    threshold_usd: Decimal

    @property
    def percent(self) -> int:
        if self.threshold_usd <= 0:
            return 100
        return min(100, int(self.converted_usdt * 100 / self.threshold_usd))


def client_balances(limit: int = 100) -> tuple[list[ClientBalance], int]:
    """Active threshold clients, the closest to a payout first, and how many there are in all.

    The balances are summed over the rows not yet paid out only (the open-rows index: a set that
    stays small however many rows have been paid out), grouped by client in one query; clients
    with nothing open follow by their id, as they sort with zero balances."""
    clients = Client.objects.filter(is_active=True, payout_strategy=PayoutStrategy.THRESHOLD)
    # Per row, by the payment's primary key (a join would make the planner read every payment).
    refunded = Exists(Payment.objects.filter(pk=OuterRef("payment_id"), status=PaymentStatus.REFUNDED))
    open_rows = (
        PayoutAccumulation.objects.filter(status__in=[S.CONVERTED, S.PENDING], client__in=clients)
        .order_by()
        .values("client")
        .annotate(
            converted=_sum(
                "credit_usdt",
                Q(status=S.CONVERTED, payout_batch_id__isnull=True) & ~Q(refunded),
            ),
            pending=_sum("net_usd", Q(status=S.PENDING)),
        )
    )
    sums = {row["client"]: (row["converted"], row["pending"]) for row in open_rows}
    with_balance = [pk for pk, (c, p) in sums.items() if c or p]
    fields = ("id", "name", "external_id", "payout_threshold_usd")
    ranked = [
        (pk, name, external_id, *sums[pk], threshold)
        for pk, name, external_id, threshold in clients.filter(pk__in=with_balance).values_list(*fields)
    ]
    ranked.sort(key=lambda r: (-r[3], -r[4], r[2]))
    ranked = ranked[:limit]
    if len(ranked) < limit:
        zero = clients.exclude(pk__in=with_balance).order_by("external_id").values_list(*fields)
        ranked += [(pk, name, ext, ZERO, ZERO, t) for pk, name, ext, t in zero[: limit - len(ranked)]]
    balances = [
        ClientBalance(client_id=pk, name=name or external_id, converted_usdt=c, pending_usd=p, threshold_usd=t)
        for pk, name, external_id, c, p, t in ranked
    ]
    return balances, clients.count()


@dataclass(frozen=True)
class DailyActivity:
    days: list[date]
    volume_usd: list[Decimal]  # finished payments' invoice value, by the day they arrived
    payments: list[int]
    conversions_completed: list[int]
    payouts_completed: list[int]


def daily_activity(days: int = 14, now: datetime | None = None) -> DailyActivity:
    """The last `days` days (today included): intake volume and completed batches per day, three
    grouped queries."""
    now = now or timezone.now()
    first = start_of_today(now) - timedelta(days=days - 1)
    calendar = [(first + timedelta(days=n)).date() for n in range(days)]
    volume = {
        row["day"]: row
        for row in Payment.objects.filter(status=PaymentStatus.FINISHED, created_at__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(usd=Sum("price_amount"), n=Count("id"))
        .order_by("day")
    }

    def completed(model: type[BatchConversion] | type[PayoutBatch]) -> dict[date, int]:
        return dict(
            model.objects.filter(status=BatchStatus.COMPLETED, completed_at__gte=first)
            .annotate(day=TruncDate("completed_at"))
            .values("day")
            .annotate(n=Count("id"))
            .order_by("day")
            .values_list("day", "n")
        )

    conversions, payouts = completed(BatchConversion), completed(PayoutBatch)
    return DailyActivity(
        days=calendar,
        volume_usd=[volume[d]["usd"] if d in volume else ZERO for d in calendar],
        payments=[volume[d]["n"] if d in volume else 0 for d in calendar],
        conversions_completed=[conversions.get(d, 0) for d in calendar],
        payouts_completed=[payouts.get(d, 0) for d in calendar],
    )
