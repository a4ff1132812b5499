"""The outbox events of payments, written in the transaction that records what happened:
payment.received (routed to its client), payment.held (held for an operator) and
payment.refunded (NOWPayments refunded it)."""

from typing import Any

from pgp_project.outbox.events import money, record_event

from .models import Payment, PaymentStatus, RoutingStatus

PAYMENT_SUBJECT = "payment"


def payment_event_types(payment: Payment, was_status: str, was_routing: str) -> list[str]:
    """What became true of the payment since it was (was_status "" for a payment not stored yet)."""
    types = []
    if payment.routing_status != was_routing:
        if payment.routing_status == RoutingStatus.ROUTED:
            types.append("payment.received")
        elif payment.routing_status == RoutingStatus.HELD:
            types.append("payment.held")
    if payment.status == PaymentStatus.REFUNDED and was_status and was_status != PaymentStatus.REFUNDED:
        types.append("payment.refunded")
    return types


def payment_payload(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.provider_payment_id,
        "order_id": payment.order_id,
        "client": payment.client.external_id if payment.client is not None else None,
        "status": payment.status,
        "routing": payment.routing_status,
        "hold_reason": payment.hold_reason or None,
        "price_amount": money(payment.price_amount),
        "price_currency": payment.price_currency,
        "outcome_amount": money(payment.outcome_amount),
        "outcome_currency": payment.outcome_currency,
    }


def record_payment_events(payment: Payment, was_status: str, was_routing: str) -> None:
    """In the transaction that wrote the payment (it has its id)."""
    for event_type in payment_event_types(payment, was_status, was_routing):
        record_event(event_type, (PAYMENT_SUBJECT, payment.pk), payment_payload(payment), client_id=payment.client_id)
