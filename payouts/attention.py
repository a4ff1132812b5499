"""What in this app waits for a person, as attention sources (/health/ counts them, the
operators' queue lists them, from the same query): payouts awaiting approval or waiting below the
exchange minimum, and host payments waiting for balance, fees or a signing key, or past their
deadline. Batches in review, and batches that stopped moving, are registered per batch kind with
the kind (`exchange_batches.registration`)."""

from typing import Any

from django.db.models import DecimalField, QuerySet, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from pgp_project.money_display import format_amount, format_time
from pgp_project.operations.attention import AttentionItem, AttentionSource, admin_change_url, queryset_source
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import entered_status_at

from .exchange_batches.attention import batch_title
from .exchange_batches.states import BatchStatus
from .models import IN_FLIGHT, PAYOUT_MACHINE, HostPayment, HostPaymentStatus, HostPaymentWait, PayoutBatch

WAIT_ACTIONS = {
    HostPaymentWait.BALANCE: "Top up the hot wallet (it goes out by itself)",
    HostPaymentWait.FEE_CAP: "Wait for fees to fall, or raise the chain's fee cap (PGP_CHAINS)",
    HostPaymentWait.SIGNING_KEY: "Put the key of its sending address in the chain's previous keys (PGP_CHAINS)",
}


def _payouts_in(status: str) -> QuerySet[PayoutBatch]:
    return (
        PayoutBatch.objects.filter(status=status)
        .select_related("client")
        .annotate(since=Coalesce(entered_status_at(PAYOUT_MACHINE.subject), "created_at"))
    )


def _awaiting_approval_item(batch: Any) -> AttentionItem:
    value = batch.total_usdt if batch.total_usdt is not None else batch.sent_value_usdt
    return AttentionItem(
        kind="payout_awaiting_approval",
        title=batch_title(PAYOUT_MACHINE.subject, batch),
        url=admin_change_url(batch),
        since=batch.since,
        reason=f"worth {format_amount(value, 'USDT')}, above the approval limit "
        f"{format_amount(batch.approval_limit, 'USDT')}",
        last_error=batch.last_error,
        action_label="Approve or reject (someone who did not act on it or its payments)",
        action_url=reverse("admin:payouts_payoutbatch_approve", args=[batch.pk]),
    )


def _awaiting_approval() -> QuerySet[PayoutBatch]:
    limit = get_runtime_settings().payout_approval_limit_usdt  # once per listing, not per row
    return _payouts_in(BatchStatus.AWAITING_APPROVAL).annotate(
        approval_limit=Value(limit, output_field=DecimalField(max_digits=18, decimal_places=6))
    )


def _below_minimum_item(batch: Any) -> AttentionItem:
    overdue = batch.deadline_at is not None and batch.deadline_at < timezone.now()
    return AttentionItem(
        kind="payout_below_minimum",
        title=batch_title(PAYOUT_MACHINE.subject, batch),
        url=admin_change_url(batch),
        since=batch.since,
        reason="below the exchange's minimum: merged into one payout once the client's later instant payments "
        "lift the sum over it" + (f"; past its deadline {format_time(batch.deadline_at)}" if overdue else ""),
        last_error=batch.last_error,
        action_label="Let it wait for the client's next payments, or pay or refund it by hand",
        action_url=admin_change_url(batch),
    )


def _host_payment_title(host_payment: HostPayment) -> str:
    return (
        f"host payment #{host_payment.pk}: {format_amount(host_payment.amount, host_payment.asset)} "
        f"on {host_payment.chain} for a {host_payment.owner_kind}"
    )


def _waiting_source(wait: HostPaymentWait) -> AttentionSource:
    kind = f"host_payment_waiting_for_{wait.value}"

    def item(host_payment: HostPayment) -> AttentionItem:
        return AttentionItem(
            kind=kind,
            title=_host_payment_title(host_payment),
            url=admin_change_url(host_payment),
            # Unsigned: it has waited since it was created (the wait is what keeps it unsigned).
            since=host_payment.created_at,
            reason=f"waits for {wait.label}",
            last_error=host_payment.last_error,
            action_label=WAIT_ACTIONS[wait],
            action_url=admin_change_url(host_payment),
        )

    return queryset_source(
        kind,
        f"Host payments waiting for {wait.label}",
        lambda: HostPayment.objects.filter(status=HostPaymentStatus.CREATED, waiting_for=wait.value),
        item,
        newest_first=("-created_at", "-id"),
        since_field="created_at",
    )


def _overdue_item(host_payment: HostPayment) -> AttentionItem:
    waiting = f", waiting for {host_payment.get_waiting_for_display()}" if host_payment.waiting_for else ""
    return AttentionItem(
        kind="host_payment_overdue",
        title=_host_payment_title(host_payment),
        url=admin_change_url(host_payment),
        since=host_payment.deadline_at,
        reason=f"{host_payment.status}{waiting}, still unconfirmed past its deadline",
        last_error=host_payment.last_error,
        action_label="Look at its wait reason and last error (its batch's deadline decides the batch)",
        action_url=admin_change_url(host_payment),
    )


def attention_sources() -> list[AttentionSource]:
    return [
        queryset_source(
            "payout_awaiting_approval",
            "Payouts awaiting approval",
            _awaiting_approval,
            _awaiting_approval_item,
            newest_first=("-created_at", "-id"),
        ),
        queryset_source(
            "payout_below_minimum",
            "Payouts waiting below the exchange minimum",
            lambda: _payouts_in(BatchStatus.WAITING_MINIMUM),
            _below_minimum_item,
            newest_first=("-created_at", "-id"),
        ),
        *(_waiting_source(wait) for wait in HostPaymentWait),
        queryset_source(
            "host_payment_overdue",
            "Host payments past their deadline",
            lambda: HostPayment.objects.filter(
                status__in=[HostPaymentStatus.CREATED, *IN_FLIGHT], deadline_at__lt=timezone.now()
            ),
            _overdue_item,
            newest_first=("-deadline_at", "-id"),
            since_field="deadline_at",
        ),
    ]
