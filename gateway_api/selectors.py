"""What a key sees: every client (gateway key) or its own client's rows only (client key), and
a client's balance by state in one aggregate query."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet, Sum

from payments.models import AccumulationStatus, Client, Payment, PaymentStatus, PayoutAccumulation
from payouts.models import PayoutBatch
from pgp_project.operations.models import PendingChange
from pgp_project.operations.selectors import get_runtime_settings
from webhooks.models import WebhookEndpoint

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


def webhook_endpoints(key: ApiKey) -> QuerySet[WebhookEndpoint]:
    """Every endpoint for a gateway key (the permission class lets no other key ask); none else."""
    endpoints = WebhookEndpoint.objects.all()
    return endpoints if key.kind == KeyKind.GATEWAY else endpoints.none()


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


# One pass over the client's rows on the (client, status) index, every state a FILTERed sum. Raw
# SQL: the ORM takes longer to build this statement (6 filtered aggregates) than PostgreSQL takes
# to run it, and the balance is the API's hottest read.
_BALANCE_SQL = """
    SELECT COALESCE(SUM(net_usd) FILTER (WHERE status = %(pending)s), 0),
           COALESCE(SUM(net_usd) FILTER (WHERE status = %(swapping)s), 0),
           COALESCE(SUM(credit_usdt) FILTER (WHERE status = %(converted)s AND payout_batch_id IS NULL), 0),
           COALESCE(SUM(credit_usdt) FILTER (WHERE status = %(in_payout)s), 0),
           COALESCE(SUM(credit_usdt) FILTER (WHERE status = %(paid_out)s), 0),
           COALESCE(SUM(net_usd) FILTER (WHERE status = %(held)s), 0)
      FROM payout_accumulation
     WHERE client_id = %(client)s
"""
BALANCE_FIELDS = ("pending_usd", "converting_usd", "credited_usdt", "in_payout_usdt", "paid_out_usdt", "held_usd")


def client_balance(client: Client) -> Balance:
    """The states as the console's overview counts them (console.selectors.money_by_state), for
    one client: every state in one pass over its rows, then, only when it has unclaimed credit,
    the refunded payments' part of it, which a payout never claims
    (payments.accumulation.unclaimed_credit)."""
    statuses = (S.PENDING, S.SWAPPING, S.CONVERTED, S.IN_PAYOUT, S.PAID_OUT, S.HELD)
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, {**{status.value: status.value for status in statuses}, "client": client.pk})
        totals: dict[str, Decimal] = dict(zip(BALANCE_FIELDS, cursor.fetchone(), strict=True))
    if totals["credited_usdt"]:
        refunded = PayoutAccumulation.objects.filter(
            client_id=client.pk,
            status=S.CONVERTED,
            payout_batch_id__isnull=True,
            payment__status=PaymentStatus.REFUNDED,
        ).aggregate(total=Sum("credit_usdt"))["total"]
        totals["credited_usdt"] -= refunded or ZERO
    fee = client.fee_percent_override
    return Balance(
        client_id=client.pk,
        payout_threshold_usd=client.payout_threshold_usd,
        fee_percent=fee if fee is not None else get_runtime_settings().default_fee_percent,
        **totals,
    )
