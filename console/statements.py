"""A client's statement for a time range: every money event, one CSV row each, the way a merchant
asks for it. Amounts are the exact decimals stored (never float), each with its unit in a column
of its own; USD values where the event has one.

Events, each at the time it happened:
- `payment`: a payment routed to the client (its outcome, what NOWPayments paid us), with its
  invoice value in USD;
- `fee`: the platform's fee on it: in USDT once a threshold payment's value is converted (or
  credited at once, for USDT payments), in ETH for an instant payout;
- `credit`: the client's USDT credited to their balance (threshold payments);
- `transaction`: a payout's send from our hot wallet, on chain (its hash), once confirmed: the
  client's balance (or an instant payment's ETH) leaving for the exchange or the client;
- `payout`: what the client received from the exchange, in their currency (its payout hash).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Q

from integrations.assets import unit_symbol
from payments.models import Client, PayoutAccumulation
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPaymentStatus, PayoutBatch, PayoutKind
from pgp_project.csv_export import Cell, csv_text
from pgp_project.money_display import fixed_places

COLUMNS = ["type", "time", "payment_id", "payout_id", "amount", "unit", "usd_value", "tx_hash", "detail"]
TYPE_ORDER = {"payment": 0, "fee": 1, "credit": 2, "transaction": 3, "payout": 4}


@dataclass(frozen=True)
class StatementEvent:
    type: str
    time: datetime
    amount: Decimal
    unit: str
    payment_id: int | None = None
    payout_id: int | None = None
    usd_value: Decimal | None = None
    tx_hash: str = ""
    detail: str = ""

    def as_row(self) -> list[Cell]:
        # Amounts stay Decimal, so the CSV writes them as numbers; the unit, hash and detail are
        # text (partly from IPNs and exchanges), which the CSV writer neutralises.
        return [
            self.type,
            self.time.isoformat(),
            self.payment_id,
            self.payout_id,
            shown_amount(self.amount, self.unit),
            self.unit,
            None if self.usd_value is None else shown_amount(self.usd_value, "USD"),
            self.tx_hash,
            self.detail,
        ]


def shown_amount(amount: Decimal, unit: str) -> Decimal:
    """The exact amount: with the places the console shows the unit with when they are fixed
    (USD, USDT), else without trailing zeros."""
    places = fixed_places(unit)
    if places is not None:
        return amount.quantize(Decimal(1).scaleb(-places))  # stored amounts fit exactly
    return amount.normalize()  # 100 becomes 1E+2, which the CSV still writes as 100


def statement_events(client: Client, start: datetime, end: datetime) -> list[StatementEvent]:
    """Every money event of `client` in [start, end), in time order. Each query selects only the
    rows with an event in the range (never the client's whole history), and the rows are read as
    plain values (no model objects): a year of a busy client is tens of thousands of rows."""
    events = [
        *_threshold_events(client, start, end),
        *_instant_events(client, start, end),
        *_payout_events(client, start, end),
    ]
    return sorted(
        (event for event in events if start <= event.time < end),
        key=lambda event: (event.time, TYPE_ORDER[event.type], event.payment_id or 0, event.payout_id or 0),
    )


def _threshold_events(client: Client, start: datetime, end: datetime) -> Iterator[StatementEvent]:
    # A row's payment is at created_at, its fee and credit at max(converted_at, created_at): a row
    # has an event in the range when either time is in it.
    in_range = Q(created_at__gte=start, created_at__lt=end) | Q(converted_at__gte=start, converted_at__lt=end)
    rows = (
        PayoutAccumulation.objects.filter(in_range, client=client)
        .order_by("created_at", "id")
        .values_list(
            "payment__provider_payment_id",
            "created_at",
            "converted_at",
            "source_amount",
            "source_currency",
            "gross_usd",
            "fee_percent",
            "fee_usd",
            "net_usd",
            "hold_reason",
            "fee_usdt",
            "credit_usdt",
            "batch_conversion_id",
        )
    )
    for (
        payment_id,
        created_at,
        converted_at,
        source_amount,
        source_currency,
        gross_usd,
        fee_percent,
        fee_usd,
        net_usd,
        hold_reason,
        fee_usdt,
        credit_usdt,
        batch_conversion_id,
    ) in rows:
        yield StatementEvent(
            "payment",
            created_at,
            source_amount,
            unit_symbol(source_currency),
            payment_id=payment_id,
            usd_value=gross_usd,
            detail=f"invoice {gross_usd} USD, fee {fee_percent} %" + (" (held)" if hold_reason else ""),
        )
        if converted_at is None or credit_usdt is None or fee_usdt is None:
            continue
        batch = f"conversion #{batch_conversion_id}" if batch_conversion_id else "credited as received"
        # A USDT payment is credited at intake: its conversion time is stamped just before the
        # row's creation time, and the credit must not come before the payment.
        credited_at = max(converted_at, created_at)
        yield StatementEvent(
            "fee", credited_at, fee_usdt, "USDT", payment_id=payment_id, usd_value=fee_usd, detail=batch
        )
        yield StatementEvent(
            "credit",
            credited_at,
            credit_usdt,
            "USDT",
            payment_id=payment_id,
            usd_value=net_usd,
            detail=batch,
        )


def _instant_events(client: Client, start: datetime, end: datetime) -> Iterator[StatementEvent]:
    batches = PayoutBatch.objects.filter(
        client=client, kind=PayoutKind.INSTANT, created_at__gte=start, created_at__lt=end
    ).select_related("payment")
    for batch in batches.order_by("created_at", "id"):
        payment = batch.payment
        if payment is None:  # the payout_instant_has_payment constraint rules this out
            continue
        unit = unit_symbol(payment.outcome_currency)
        yield StatementEvent(
            "payment",
            batch.created_at,
            payment.outcome_amount or Decimal(0),
            unit,
            payment_id=payment.provider_payment_id,
            payout_id=batch.pk,
            usd_value=payment.price_to_credit,
            detail=f"instant payout, now {batch.status}",
        )
        if batch.fee_amount:
            yield StatementEvent(
                "fee",
                batch.created_at,
                batch.fee_amount,
                unit,
                payment_id=payment.provider_payment_id,
                payout_id=batch.pk,
                detail="retained before the exchange",
            )


def _payout_events(client: Client, start: datetime, end: datetime) -> Iterator[StatementEvent]:
    sent = Q(host_payment__status=HostPaymentStatus.CONFIRMED) | Q(status=BatchStatus.COMPLETED)
    # The send at the host payment's confirmation, the payout at the batch's completion.
    in_range = Q(host_payment__confirmed_at__gte=start, host_payment__confirmed_at__lt=end) | Q(
        completed_at__gte=start, completed_at__lt=end
    )
    batches = PayoutBatch.objects.filter(sent, in_range, client=client).select_related("host_payment")
    for batch in batches.order_by("created_at", "id"):
        host_payment = batch.host_payment
        if (
            host_payment is not None
            and host_payment.status == HostPaymentStatus.CONFIRMED
            and host_payment.confirmed_at
        ):
            yield StatementEvent(
                "transaction",
                host_payment.confirmed_at,
                host_payment.amount,
                unit_symbol(host_payment.asset),
                payout_id=batch.pk,
                tx_hash=host_payment.tx_hash or "",
                detail=f"from the hot wallet to {host_payment.to_address} ({batch.get_kind_display()})",
            )
        if batch.status == BatchStatus.COMPLETED and batch.completed_at and batch.payout_amount is not None:
            yield StatementEvent(
                "payout",
                batch.completed_at,
                batch.payout_amount,
                unit_symbol(batch.payout_currency),
                payout_id=batch.pk,
                tx_hash=batch.payout_tx_hash,
                detail=f"to {batch.wallet_address} on {batch.payout_network}",
            )


def statement_csv(client: Client, start: datetime, end: datetime) -> str:
    return csv_text(COLUMNS, (event.as_row() for event in statement_events(client, start, end)))
