"""What a finished payment turns into: an accumulation row, or a hold for an operator."""

import logging
from decimal import ROUND_DOWN, Decimal

from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from integrations.assets import ETH, USDT_ERC20, asset_by_nowpayments_code
from pgp_project.money import USD_QUANTUM, USDT_QUANTUM, percent_of
from pgp_project.operations.models import RuntimeSettings
from pgp_project.operations.permissions import require_permission
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_action

from .instant_payouts import instant_payouts
from .ipn_payload import parse_order_id
from .models import (
    AccumulationStatus,
    Client,
    Payment,
    PaymentStatus,
    PayoutAccumulation,
    PayoutStrategy,
    RoutingStatus,
    SourceAsset,
)
from .money_controls import RESOLVE_HELD_PAYMENT
from .reference_prices import ReadPrice, fresh_price_query, price_outcome_mismatch

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
    confirmed change applies to the next payment, with no cache to invalidate."""
    runtime = RuntimeSettings.objects.filter(pk=RuntimeSettings.SINGLETON_ID).values("default_fee_percent")[:1]
    return (
        Client.objects.filter(external_id=external_id)
        .annotate(
            runtime_default_fee_percent=Subquery(runtime),
            fresh_eth_usd_price=Subquery(fresh_price_query()),
        )
        .first()
    )


def hold_payment(payment: Payment, reason: str) -> None:
    payment.routing_status = RoutingStatus.HELD
    payment.hold_reason = reason
    logger.warning("payment held for review: provider_payment_id=%s reason=%s", payment.provider_payment_id, reason)


def route_finished_payment(payment: Payment, *, price_reviewed: bool = False) -> None:
    """Route a payment that just became `finished` (or a partial one an operator accepted).
    Caller holds the payment's row lock. `price_reviewed`: an operator routes it again after
    checking an outcome that did not match its invoice.

    Genuine money is never dropped: anything that cannot be routed is held with the reason.
    """
    assert payment.status == PaymentStatus.FINISHED or payment.accepted_price_amount is not None
    parsed = parse_order_id(payment.order_id)
    if parsed is None:
        hold_payment(payment, f"order_id {payment.order_id!r} is not PGP-{{user_id}}|{{client_id}}")
        return
    user_id, client_external_id = parsed
    payment.user_id = user_id
    client = client_for_routing(client_external_id)
    if client is None:
        hold_payment(payment, f"unknown client {client_external_id!r}")
        return
    payment.client = client
    if not client.is_active:
        hold_payment(payment, f"client {client_external_id!r} is inactive")
        return
    if payment.price_currency.lower() != "usd":
        hold_payment(payment, f"price currency {payment.price_currency!r} is not USD")
        return
    read_price = ReadPrice(client.fresh_eth_usd_price)  # type: ignore[attr-defined]
    mismatch = None if price_reviewed else price_outcome_mismatch(payment, read_price)
    if mismatch:
        hold_payment(payment, mismatch)
        return
    if client.payout_strategy == PayoutStrategy.INSTANT:
        if asset_by_nowpayments_code(payment.outcome_currency) != ETH:
            hold_payment(payment, f"instant payouts send ETH; outcome currency is {payment.outcome_currency!r}")
            return
        instant_payouts().open(payment, client, fee_percent_for(client))
        payment.routing_status = RoutingStatus.ROUTED
        payment.hold_reason = ""
        return
    create_accumulation(payment, client, user_id)
    payment.routing_status = RoutingStatus.ROUTED
    payment.hold_reason = ""


def create_accumulation(payment: Payment, client: Client, user_id: int) -> PayoutAccumulation:
    """The one accumulation row of a finished threshold payment, fee snapshotted now."""
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
    row.save()
    return row


def reroute_held_payment(payment_id: int, *, actor: object = None) -> Payment:
    """Operator action: route a held finished payment again (e.g. after adding its client).

    Safe to run twice: only a payment still held, finished and without a row is routed.
    """
    require_permission(actor, RESOLVE_HELD_PAYMENT)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if (
            payment.routing_status == RoutingStatus.HELD
            and payment.status == PaymentStatus.FINISHED
            and not PayoutAccumulation.objects.filter(payment=payment).exists()
        ):
            held_because = payment.hold_reason
            # The operator has looked at it: an outcome that did not match its invoice goes on.
            route_finished_payment(payment, price_reviewed=True)
            payment.save()
            record_action(
                "payment",
                payment.pk,
                action="reroute",
                status=payment.routing_status,
                actor=actor,
                reason=f"was held: {held_because}; now {payment.routing_status} {payment.hold_reason}".strip(),
            )
    return payment
