"""What a finished payment turns into: an accumulation row, or a hold for an operator."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from integrations.assets import ETH, USDT_ERC20, asset_by_nowpayments_code
from pgp_project.money import USD_QUANTUM, USDT_QUANTUM, percent_of
from pgp_project.operations.models import RuntimeSettings
from pgp_project.operations.permissions import require_permission
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_action
from pgp_project.prepared_statements import execute_prepared

from .events import record_payment_events
from .instant_payouts import instant_payouts
from .ipn_payload import parse_order_id
from .models import (
    AccumulationStatus,
    Client,
    Payment,
    PaymentStatus,
    PayoutAccumulation,
    PayoutStrategy,
    ReferencePrice,
    RoutingStatus,
    SourceAsset,
)
from .money_controls import RESOLVE_HELD_PAYMENT, people_behind_client, release_needs_second_person
from .reference_prices import PRICED_ASSET, ReadPrice, fresh_usd_price, price_outcome_mismatch

logger = logging.getLogger(__name__)


def fee_percent_for(client: Client) -> Decimal:
    if client.fee_percent_override is not None:
        return client.fee_percent_override
    # Read with the client (client_for_routing), else now.
    default: Decimal | None = getattr(client, "runtime_default_fee_percent", None)
    return default if default is not None else get_runtime_settings().default_fee_percent


def client_for_routing(external_id: str) -> Client | None:
    """The client, with what routing its payment needs in the same query: the runtime default
    fee (`runtime_default_fee_percent`; None before the settings row exists) and the fresh
    reference price of ETH (`fresh_eth_usd_price`). Read fresh every time: an operator's
    confirmed change applies to the next payment, with no cache to invalidate.

    Plain SQL, written once per process and prepared once per connection: it runs on every
    finished IPN, where building the same query through the ORM cost ten times what PostgreSQL
    took to answer it."""
    sql, attnames = _client_for_routing_sql()
    oldest_fresh_price = timezone.now() - timedelta(seconds=settings.PGP_REFERENCE_PRICE_MAX_AGE_SECONDS)
    with connection.cursor() as cursor:
        params = [RuntimeSettings.SINGLETON_ID, PRICED_ASSET.symbol, oldest_fresh_price, external_id]
        execute_prepared(cursor, sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    client = Client.from_db(connection.alias, attnames, row[: len(attnames)])
    client.runtime_default_fee_percent, client.fresh_eth_usd_price = row[len(attnames) :]  # type: ignore[attr-defined]
    return client


@cache
def _client_for_routing_sql() -> tuple[str, list[str]]:
    quote = connection.ops.quote_name
    fields = Client._meta.concrete_fields
    columns = ", ".join(f"client.{quote(str(field.column))}" for field in fields)
    runtime_fee = (
        f"SELECT {quote('default_fee_percent')} FROM {quote(RuntimeSettings._meta.db_table)} WHERE {quote('id')} = %s"  # noqa: S608 (names)
    )
    fresh_price = (
        f"SELECT {quote('usd_price')} FROM {quote(ReferencePrice._meta.db_table)} "  # noqa: S608 (names)
        f"WHERE {quote('asset_symbol')} = %s AND {quote('fetched_at')} >= %s"  # at most one: the symbol is unique
    )
    sql = (
        f"SELECT {columns}, ({runtime_fee}), ({fresh_price}) "  # noqa: S608 (names)
        f"FROM {quote(Client._meta.db_table)} client WHERE client.{quote('external_id')} = %s"
    )
    return sql, [field.attname for field in fields]


def hold_payment(payment: Payment, reason: str) -> None:
    mark_held(payment, reason)
    log_hold(payment)


def mark_held(payment: Payment, reason: str) -> None:
    """Hold the payment for review, logging nothing yet (plan_routing: nothing is written yet)."""
    payment.routing_status = RoutingStatus.HELD
    payment.hold_reason = reason


def log_hold(payment: Payment) -> None:
    logger.warning(
        "payment held for review: provider_payment_id=%s reason=%s", payment.provider_payment_id, payment.hold_reason
    )


@dataclass(frozen=True)
class RoutingPlan:
    """What routing decided for a finished payment beyond the payment's own fields, before
    anything is written: the accumulation row to insert (unsaved), or an instant payout to open
    with this fee. Neither: the payment is held (its hold_reason says why)."""

    accumulation: PayoutAccumulation | None = None
    instant_payout_fee_percent: Decimal | None = None

    @property
    def opens_instant_payout(self) -> bool:
        return self.instant_payout_fee_percent is not None


def route_finished_payment(
    payment: Payment, *, price_reviewed: bool = False, read_client: Client | None = None
) -> None:
    """Route a payment that just became `finished` (or a partial one an operator accepted).
    Caller holds the payment's row lock. `price_reviewed`: an operator routes it again after
    checking an outcome that did not match its invoice. `read_client`: see plan_routing.

    Genuine money is never dropped: anything that cannot be routed is held with the reason.
    """
    apply_routing(payment, plan_routing(payment, price_reviewed=price_reviewed, read_client=read_client))


def plan_routing(payment: Payment, *, price_reviewed: bool = False, read_client: Client | None = None) -> RoutingPlan:
    """Decide where a finished payment goes, writing nothing: sets the payment's client, user,
    routing status and hold reason, and returns what else must be written (apply_routing, or
    the intake's one-statement write of a first notification).

    `read_client`: the client as client_for_routing read it moments ago for this same IPN (the
    intake plans a first notification before it knows the payment exists); used when it is the
    order id's client, else the client is read now."""
    assert payment.status == PaymentStatus.FINISHED or payment.accepted_price_amount is not None
    order_id, why_not = routing_order_id(payment)
    if why_not:
        mark_held(payment, why_not)
        return RoutingPlan()
    parsed = parse_order_id(order_id)
    if parsed is None:
        mark_held(payment, f"order_id {order_id!r} is not PGP-{{user_id}}|{{client_id}}")
        return RoutingPlan()
    user_id, client_external_id = parsed
    payment.user_id = user_id
    if read_client is not None and read_client.external_id == client_external_id:
        client: Client | None = read_client
    else:
        client = client_for_routing(client_external_id)
    if client is None:
        mark_held(payment, f"unknown client {client_external_id!r}")
        return RoutingPlan()
    payment.client = client
    if not client.is_active:
        mark_held(payment, f"client {client_external_id!r} is inactive")
        return RoutingPlan()
    if payment.price_currency.lower() != "usd":
        mark_held(payment, f"price currency {payment.price_currency!r} is not USD")
        return RoutingPlan()
    read_price = ReadPrice(client.fresh_eth_usd_price)  # type: ignore[attr-defined]
    not_worth_it = _value_check(payment, read_price, price_reviewed=price_reviewed)
    if not_worth_it:
        mark_held(payment, not_worth_it)
        return RoutingPlan()
    if client.payout_strategy == PayoutStrategy.INSTANT:
        if asset_by_nowpayments_code(payment.outcome_currency) != ETH:
            mark_held(payment, f"instant payouts send ETH; outcome currency is {payment.outcome_currency!r}")
            return RoutingPlan()
        plan = RoutingPlan(instant_payout_fee_percent=fee_percent_for(client))
    else:
        plan = RoutingPlan(accumulation=build_accumulation(payment, client, user_id))
    payment.routing_status = RoutingStatus.ROUTED
    payment.hold_reason = ""
    return plan


def _value_check(payment: Payment, read_price: ReadPrice, *, price_reviewed: bool) -> str | None:
    """Why the payment's worth stops it (its hold reason), or None. An ordinary payment: its
    outcome must match its invoice (reference_prices.price_outcome_mismatch), unless an operator
    checked it. A repeated deposit has no invoice of its own: it is valued by its outcome, which
    needs a fresh price (repeated_deposit_value), and that value is what it is credited."""
    if not payment.is_repeated_deposit:
        return None if price_reviewed else price_outcome_mismatch(payment, read_price)
    value = repeated_deposit_value(payment, read_price)
    if value is None:
        return (
            f"repeated deposit of payment {payment.parent_provider_payment_id}: no fresh reference price of "
            f"{payment.outcome_currency!r} to value it by (its invoice is its parent's); route it again once "
            "the price is fresh"
        )
    payment.deposit_value_usd = value
    return None


def routing_order_id(payment: Payment) -> tuple[str, str]:
    """(the order id a finished payment is routed by, "") or ("", why it cannot be routed).

    A repeated deposit (NOWPayments: a further payment to an earlier payment's address, a new
    payment naming it in `parent_payment_id`) belongs to its parent's order: its own order_id,
    often null, must agree with the parent's when it has one. It is held until its parent is
    recorded here (link_parent), since only the parent says whose address received it."""
    if not payment.is_repeated_deposit:
        return (payment.order_id, "") if payment.order_id else ("", "no order_id")
    parent = payment.parent
    if parent is None:
        return "", (
            f"repeated deposit of payment {payment.parent_provider_payment_id}, which is not recorded here; "
            "route it again once its parent is"
        )
    if payment.order_id and payment.order_id != parent.order_id:
        return "", (
            f"repeated deposit with order_id {payment.order_id!r}, but its parent payment "
            f"{parent.provider_payment_id} has order_id {parent.order_id!r}"
        )
    if not parent.order_id:
        return "", f"no order_id (nor has its parent payment {parent.provider_payment_id})"
    return parent.order_id, ""


def link_parent(payment: Payment) -> None:
    """Point a repeated deposit at its parent's row when the parent is recorded (one query by the
    provider's unique id); nothing when it is not, or names itself."""
    parent_id = payment.parent_provider_payment_id
    if parent_id is None or parent_id == payment.provider_payment_id:
        return
    parent = Payment.objects.filter(provider_payment_id=parent_id).only("id", "provider_payment_id", "order_id").first()
    if parent is not None:
        payment.parent = parent


def repeated_deposit_value(payment: Payment, read: ReadPrice | None = None) -> Decimal | None:
    """What a repeated deposit is worth, in USD: its outcome at the fresh reference price (the
    rate of its own arrival, as NOWPayments converts it), rounded DOWN to the cent, never its
    price_amount, which is its parent's invoice and would credit that invoice twice. None when no
    fresh price exists for its outcome's asset: it is then held. `read`: the price as the caller
    read it already (else it is read now)."""
    asset = asset_by_nowpayments_code(payment.outcome_currency)
    if asset is None or not payment.outcome_amount:
        return None
    price = fresh_usd_price(asset, read)
    if price is None:
        return None
    return (payment.outcome_amount * price).quantize(USD_QUANTUM, rounding=ROUND_DOWN)


def apply_routing(payment: Payment, plan: RoutingPlan) -> None:
    """Write what plan_routing decided, for a payment that is in the database (has its id)."""
    if payment.routing_status == RoutingStatus.HELD:
        log_hold(payment)
    if plan.accumulation is not None:
        plan.accumulation.payment = payment
        plan.accumulation.save()
    if plan.instant_payout_fee_percent is not None:
        assert payment.client is not None
        instant_payouts().open(payment, payment.client, plan.instant_payout_fee_percent)


def build_accumulation(payment: Payment, client: Client, user_id: int) -> PayoutAccumulation:
    """The one accumulation row of a finished threshold payment, fee snapshotted now (unsaved)."""
    fee_percent = fee_percent_for(client)
    gross_usd = payment.price_to_credit
    fee_usd = percent_of(gross_usd, fee_percent, USD_QUANTUM)
    outcome_currency = payment.outcome_currency.lower()
    row = PayoutAccumulation(
        payment=payment,
        client=client,
        user_id=user_id,
        gross_usd=gross_usd,
        fee_percent=fee_percent,
        fee_usd=fee_usd,
        net_usd=gross_usd - fee_usd,
        source_currency=outcome_currency,
        source_amount=payment.outcome_amount,
        wallet_address=client.wallet_address,
        payout_currency=client.payout_currency,
        payout_network=client.payout_network,
    )
    outcome_asset = asset_by_nowpayments_code(outcome_currency)
    if outcome_asset == ETH:
        row.source_asset = SourceAsset.ETH
        row.status = AccumulationStatus.PENDING
    elif outcome_asset == USDT_ERC20:
        # Already the USDT the hot wallet holds: credited without a conversion.
        # Already USDT on our network: credit now. Never credit more than arrived: round down.
        usdt = payment.outcome_amount.quantize(USDT_QUANTUM, rounding=ROUND_DOWN)
        row.source_asset = SourceAsset.USDT
        row.status = AccumulationStatus.CONVERTED
        row.usdt_amount = usdt
        row.fee_usdt = percent_of(usdt, fee_percent, USDT_QUANTUM)
        row.credit_usdt = usdt - row.fee_usdt
        row.converted_at = timezone.now()
    else:
        row.source_asset = SourceAsset.OTHER
        row.status = AccumulationStatus.HELD
        row.hold_reason = (
            f"outcome currency {outcome_currency!r} is neither ETH nor USDT ERC-20; "
            "an operator must convert or refund it"
        )
    return row


def reroute_held_payment(payment_id: int, *, actor: object = None) -> Payment:
    """Operator action: route a held finished payment again (e.g. after adding its client).

    A second person is needed when the payment predates its client's confirmed activation, or
    when the person routing it created the client or requested its activation
    (`release_needs_second_person`): the first person's action records a request, and only
    another person's routes it.

    Safe to run twice: only a payment still held, finished and without a row is routed.
    """
    require_permission(actor, RESOLVE_HELD_PAYMENT)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if (
            payment.routing_status != RoutingStatus.HELD
            or payment.status != PaymentStatus.FINISHED
            or PayoutAccumulation.objects.filter(payment=payment).exists()
        ):
            return payment
        if payment.is_repeated_deposit and payment.parent_id is None:
            link_parent(payment)  # its parent may have been recorded since it was held
        if release_awaits_second_person(payment, actor):
            return payment
        held_because = payment.hold_reason
        requested_by = payment.reroute_requested_by
        # The operator has looked at it: an outcome that did not match its invoice goes on.
        release_held_payment(payment, price_reviewed=True)
        record_action(
            "payment",
            payment.pk,
            action="reroute",
            status=payment.routing_status,
            actor=actor,
            reason=f"was held: {held_because}; now {payment.routing_status} {payment.hold_reason}".strip()
            + (f"; requested by {requested_by}" if requested_by is not None else ""),
        )
    return payment


def release_held_payment(payment: Payment, *, price_reviewed: bool = False) -> None:
    """A person releases a held payment (routes it again, or accepts a partial one): it is routed
    (or held again with the new reason) and any pending release request is closed with it.
    Caller holds the payment's row lock and has checked `release_awaits_second_person`."""
    was_routing = payment.routing_status
    route_finished_payment(payment, price_reviewed=price_reviewed)
    payment.reroute_requested_by = None
    payment.reroute_requested_at = None
    payment.save()
    record_payment_events(payment, payment.status, was_routing)


def release_awaits_second_person(payment: Payment, actor: object) -> bool:
    """Whether this person may not release a held payment to its client on their own (route it
    again, or accept a partial payment): records their request (the first person's) and
    returns True; False when they may release it now. Caller holds the payment's row lock."""
    parsed = parse_order_id(routing_order_id(payment)[0])
    client = Client.objects.filter(external_id=parsed[1]).first() if parsed is not None else None
    if client is None:
        return False  # it stays held, as unknown: nothing to release
    why = release_needs_second_person(payment, client, actor)
    requested_by = payment.reroute_requested_by_id
    actor_id = getattr(actor, "pk", None)
    if not why or (
        requested_by is not None and requested_by != actor_id and actor_id not in people_behind_client(client)
    ):
        return False
    if requested_by is None:
        payment.reroute_requested_by = actor  # type: ignore[assignment]
        payment.reroute_requested_at = timezone.now()
        payment.save(update_fields=["reroute_requested_by", "reroute_requested_at", "updated_at"])
        record_action(
            "payment",
            payment.pk,
            action="reroute_requested",
            status=payment.routing_status,
            actor=actor,
            reason=f"routing it needs a second person: {why}",
        )
    return True
