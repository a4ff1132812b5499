"""What in this app waits for a person: payments held for review, and accumulation rows held (a
refunded payment's value, say). Each is an attention source: /health/ counts it, the operators'
queue lists it, from the same query."""

from pgp_project.money_display import format_amount
from pgp_project.operations.attention import (
    AttentionItem,
    AttentionSource,
    admin_action_url,
    admin_change_url,
    queryset_source,
)

from .models import AccumulationStatus, Payment, PaymentStatus, PayoutAccumulation, RoutingStatus


def _held_payment_item(payment: Payment) -> AttentionItem:
    partial = payment.status == PaymentStatus.PARTIALLY_PAID
    return AttentionItem(
        kind="payment_held",
        title=f"payment {payment}" + (f" for {payment.client}" if payment.client_id else ""),
        url=admin_change_url(payment),
        # Held when its last IPN was applied; nothing moves it afterwards but an operator.
        since=payment.updated_at,
        reason=payment.hold_reason,
        last_error="",
        action_label=(
            "Accept the amount actually paid (held partial payments)"
            if partial
            # First heard of with a status NOWPayments does not document (intake.py).
            else "Check the payment in NOWPayments' dashboard; its next documented status moves it on"
            if payment.status == PaymentStatus.WAITING
            else "Route held finished payments again (once checked)"
        ),
        action_url=admin_action_url(payment),
    )


def _held_row_item(row: PayoutAccumulation) -> AttentionItem:
    return AttentionItem(
        kind="accumulation_row_held",
        title=f"accumulation #{row.pk} of {row.client}: {format_amount(row.net_usd, 'USD')}",
        url=admin_change_url(row),
        since=row.updated_at,
        reason=row.hold_reason,
        last_error="",
        action_label="Reconcile by hand (never claimed by a payout while held)",
        action_url=admin_change_url(row.payment),
    )


def attention_sources() -> list[AttentionSource]:
    return [
        queryset_source(
            "payment_held",
            "Payments held for review",
            lambda: Payment.objects.filter(routing_status=RoutingStatus.HELD).select_related("client"),
            _held_payment_item,
            newest_first=("-updated_at", "-id"),
            since_field="updated_at",
        ),
        queryset_source(
            "accumulation_row_held",
            "Accumulation rows held",
            lambda: PayoutAccumulation.objects.filter(status=AccumulationStatus.HELD).select_related(
                "client", "payment"
            ),
            _held_row_item,
            newest_first=("-updated_at", "-id"),
            since_field="updated_at",
        ),
    ]
