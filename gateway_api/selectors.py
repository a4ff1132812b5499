"""What a key sees: every client (gateway key) or its own client's rows only (client key), and
a client's balance by state in one aggregate query."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from payments.models import AccumulationStatus, Client, Payment, PaymentStatus, PayoutAccumulation
from payouts.models import PayoutBatch
from pgp_project.operations.models import PendingChange
from pgp_project.operations.selectors import get_runtime_settings

from .models import ApiKey, KeyKind

ZERO = Decimal(0)
S = AccumulationStatus


def _own_client(key: ApiKey) -> int:
    assert key.client_id is not None, "a client key names its client (api_key_client_matches_kind)"
    return key.client_id


def visible_clients(key: ApiKey) -> QuerySet[Client]:
    clients = Client.objects.all()
    return clients if key.kind == KeyKind.GATEWAY else clients.filter(pk=_own_client(key))


def visible_payments(key: ApiKey) -> QuerySet[Payment]:
    payments = Payment.objects.all()
    return payments if key.kind == KeyKind.GATEWAY else payments.filter(client_id=_own_client(key))


def visible_payouts(key: ApiKey) -> QuerySet[PayoutBatch]:
    payouts = PayoutBatch.objects.select_related("host_payment")
    return payouts if key.kind == KeyKind.GATEWAY else payouts.filter(client_id=_own_client(key))


def client_changes(client_id: int) -> QuerySet[PendingChange]:
    from payments.money_controls import CLIENT_SUBJECT

    return PendingChange.objects.filter(subject_type=CLIENT_SUBJECT, subject_id=client_id)


def within(rows: QuerySet, *, after: datetime | None, before: datetime | None, field: str = "created_at") -> QuerySet:
    if after is not None:
        rows = rows.filter(**{f"{field}__gte": after})
    if before is not None:
        rows = rows.filter(**{f"{field}__lt": before})
    return rows


@dataclass(frozen=True)
class Balance:
    client_id: int
    pending_usd: Decimal  # net USD of routed payments awaiting a conversion
    converting_usd: Decimal  # net USD claimed by a conversion under way
    credited_usdt: Decimal  # converted credit no payout has claimed yet
    in_payout_usdt: Decimal  # claimed by a payout under way
    paid_out_usdt: Decimal
    held_usd: Decimal  # held for an operator's review
    payout_threshold_usd: Decimal
    fee_percent: Decimal  # the client's override, else the platform default


def _sum(field: str, condition: Q) -> Coalesce:
    return Coalesce(Sum(field, filter=condition), Value(ZERO), output_field=DecimalField())


def client_balance(client: Client) -> Balance:
    """The states as the console's overview counts them (console.selectors.money_by_state), for
    one client. Two aggregates on the (client, status) index: every state over the client's rows
    without a join, then the refunded payments' credit to take out of what a payout may claim
    (payments.accumulation.unclaimed_credit), joining only the unclaimed converted rows."""
    rows = PayoutAccumulation.objects.filter(client_id=client.pk).order_by()
    unclaimed = Q(status=S.CONVERTED, payout_batch_id__isnull=True)
    totals = rows.aggregate(
        pending_usd=_sum("net_usd", Q(status=S.PENDING)),
        converting_usd=_sum("net_usd", Q(status=S.SWAPPING)),
        credited_usdt=_sum("credit_usdt", unclaimed),
        in_payout_usdt=_sum("credit_usdt", Q(status=S.IN_PAYOUT)),
        paid_out_usdt=_sum("credit_usdt", Q(status=S.PAID_OUT)),
        held_usd=_sum("net_usd", Q(status=S.HELD)),
    )
    if totals["credited_usdt"]:
        refunded = rows.filter(unclaimed, payment__status=PaymentStatus.REFUNDED)
        totals["credited_usdt"] -= refunded.aggregate(total=_sum("credit_usdt", Q()))["total"]
    fee = client.fee_percent_override
    return Balance(
        client_id=client.pk,
        payout_threshold_usd=client.payout_threshold_usd,
        fee_percent=fee if fee is not None else get_runtime_settings().default_fee_percent,
        **totals,
    )
