"""Money that arrives late, in part, or goes back after it finished (issue: "late and partial
payments are money too"). NOWPayments tells us in IPNs that intake would otherwise call stale:

- `finished` after `expired` or `failed`: a late payer, or IPNs out of order. Routed as any
  finished payment, with an alert.
- `partially_paid`: held for an operator, who may accept the amount actually paid.
- `refunded` after `finished` (or after an operator accepted part of it): the accumulation row
  is held if no payout has claimed it, and a refunded payment's row is never claimed by a payout
  later; an instant payout is stopped if nothing was sent; otherwise the payment goes to review.
  Alerted.
- `finished` after an operator accepted part of a payment: it was credited already, for the part
  accepted; the rest is left to the operator (held, alerted), never a second row or payout.
"""

from decimal import ROUND_DOWN

from django.db import transaction

from pgp_project.money import USD_QUANTUM
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.permissions import require_permission
from pgp_project.operations.state_machine import record_action

from .alerts import FINISHED_AFTER_PARTIAL_ACCEPTANCE, LATE_PAYMENT, PARTIAL_PAYMENT, PAYMENT_REFUNDED
from .instant_payouts import instant_payouts
from .models import AccumulationStatus, Client, Payment, PaymentStatus, PayoutAccumulation, RoutingStatus
from .money_controls import RESOLVE_HELD_PAYMENT
from .routing import (
    hold_payment,
    link_parent,
    log_hold,
    mark_held,
    release_awaits_second_person,
    release_held_payment,
    repeated_deposit_value,
    route_finished_payment,
)

LATE_AFTER = (PaymentStatus.EXPIRED, PaymentStatus.FAILED)


class PartialPaymentNotAcceptable(Exception):
    pass


def is_late_finish(stored: str, new: str) -> bool:
    return new == PaymentStatus.FINISHED and stored in LATE_AFTER


def is_refund_after_finish(stored: str, new: str) -> bool:
    return new == PaymentStatus.REFUNDED and stored == PaymentStatus.FINISHED


def route_late_payment(payment: Payment, was: str, *, read_client: Client | None = None) -> None:
    route_finished_payment(payment, read_client=read_client)
    alert(
        LATE_PAYMENT,
        _subject(payment),
        provider_payment_id=payment.provider_payment_id,
        finished_after=was,
        routed=payment.routing_status,
    )


def hold_partial_payment(payment: Payment) -> None:
    mark_partial_payment_held(payment)
    announce_partial_payment(payment)


def mark_partial_payment_held(payment: Payment) -> None:
    """Hold a partially paid payment for an operator, saying and writing nothing yet."""
    mark_held(
        payment,
        f"partially paid: {payment.actually_paid} of {payment.pay_amount} {payment.pay_currency}; an operator may "
        "accept the amount actually paid",
    )


def announce_partial_payment(payment: Payment) -> None:
    log_hold(payment)
    alert(
        PARTIAL_PAYMENT,
        _subject(payment),
        provider_payment_id=payment.provider_payment_id,
        paid=payment.actually_paid,
        of=payment.pay_amount,
        currency=payment.pay_currency,
    )


def hold_topped_up_partial_payment(payment: Payment) -> str:
    rest = payment.price_amount - (payment.accepted_price_amount or 0)
    hold_payment(
        payment,
        f"finished after an operator accepted {payment.accepted_price_amount} USD of it as a partial payment; "
        f"the rest ({rest} USD) is not credited: credit it by hand if the payer completed the payment",
    )
    alert(
        FINISHED_AFTER_PARTIAL_ACCEPTANCE,
        _subject(payment),
        provider_payment_id=payment.provider_payment_id,
        rest_usd=rest,
    )
    return f"held for review: {payment.hold_reason}"


def handle_refund_of_routed_payment(payment: Payment) -> str:
    """Stop the refunded payment's value from being paid out where nothing has left yet; say
    what was done. Caller holds the payment's row lock."""
    row = PayoutAccumulation.objects.select_for_update().filter(payment=payment).first()
    if row is not None:
        done = _hold_row(payment, row)
    elif payment.routing_status == RoutingStatus.ROUTED:
        done = instant_payouts().refunded(payment)
    else:
        done = "it had not been routed"
    alert(PAYMENT_REFUNDED, _subject(payment), provider_payment_id=payment.provider_payment_id, done=done)
    return done


def _hold_row(payment: Payment, row: PayoutAccumulation) -> str:
    """Hold the row unless it is on its way: waiting for a conversion or converted, no payout has
    it yet. A row in a conversion stays there (its ETH went with the others), but no payout
    ever claims the row of a refunded payment (accumulation.claim_for_payout)."""
    if row.status in (AccumulationStatus.PENDING, AccumulationStatus.CONVERTED) and row.payout_batch_id is None:
        PayoutAccumulation.objects.filter(pk=row.pk, status=row.status).update(
            status=AccumulationStatus.HELD,
            hold_reason=f"NOWPayments refunded payment #{payment.provider_payment_id} after it finished",
        )
        return f"its accumulation row #{row.pk} is held: no payout had claimed it"
    where = f"payout #{row.payout_batch_id}" if row.payout_batch_id else f"conversion #{row.batch_conversion_id}"
    if row.status == AccumulationStatus.SWAPPING:
        hold_payment(
            payment,
            f"refunded after it finished, while its ETH is in {where}: its credit will not be paid out; "
            "reconcile the refund by hand",
        )
    else:
        hold_payment(payment, f"refunded after it finished, but its value already left in {where}: reconcile by hand")
    return f"its value already left in {where} ({row.status}); the payment is held for review"


def accept_partial_payment(payment_id: int, *, actor: object) -> Payment:
    """An operator accepts a partially paid payment for what was actually paid: it is credited
    at the invoice's USD price in proportion, and routed as a finished payment would be. A
    repeated deposit (NOWPayments marks them partially paid by default) has no invoice of its
    own: it is credited by its value at the fresh reference price, and refused without one."""
    require_permission(actor, RESOLVE_HELD_PAYMENT)
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status != PaymentStatus.PARTIALLY_PAID or payment.routing_status != RoutingStatus.HELD:
            raise PartialPaymentNotAcceptable(f"payment #{payment.provider_payment_id} is not a held partial payment")
        if not (payment.actually_paid and payment.pay_amount and payment.outcome_amount and payment.outcome_currency):
            raise PartialPaymentNotAcceptable(
                f"payment #{payment.provider_payment_id} does not say what was paid and received (actually_paid, "
                "pay_amount, outcome_amount, outcome_currency)"
            )
        if payment.is_repeated_deposit and payment.parent_id is None:
            link_parent(payment)
        if release_awaits_second_person(payment, actor):
            return payment
        if payment.is_repeated_deposit:
            value = repeated_deposit_value(payment)
            if value is None:
                raise PartialPaymentNotAcceptable(
                    f"payment #{payment.provider_payment_id} is a repeated deposit: it is credited by its value, "
                    "and there is no fresh reference price to value it by; try again once there is"
                )
            payment.accepted_price_amount = value
        else:
            share = min(payment.actually_paid / payment.pay_amount, 1)
            payment.accepted_price_amount = (payment.price_amount * share).quantize(USD_QUANTUM, rounding=ROUND_DOWN)
        held_because = payment.hold_reason
        release_held_payment(payment)
        record_action(
            "payment",
            payment.pk,
            action="accept_partial",
            status=payment.routing_status,
            actor=actor,
            reason=f"accepted {payment.accepted_price_amount} USD of {payment.price_amount} ({held_because})",
        )
    return payment


def _subject(payment: Payment) -> Subject:
    return Subject("payment", payment.pk)
