"""What of an exchange-funded batch kind (conversions, client payouts) waits for a person: batches
in review (failed or refunded), and open batches that stopped moving (past their deadline, or
their next step long overdue: the recovery sweep is not getting them on). Registered for each kind
with the kind itself (`registration.register`)."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from pgp_project.money_display import format_amount, format_time
from pgp_project.operations.attention import (
    AttentionItem,
    AttentionSource,
    admin_action_url,
    admin_change_url,
    queryset_source,
)
from pgp_project.operations.state_machine import entered_status_at

from ..models import HostPaymentStatus
from .flow import ExchangeFundedFlow
from .states import OPEN_STATUSES, REVIEW_STATUSES, BatchStatus

# The admin actions (ExchangeBatchAdminMixin) an item in review is resolved with.
CANCEL = "Cancel and release rows (only if nothing was sent)"
RESUME = "Resume a funded batch in review (host payment confirmed)"
RELEASE_REFUNDED = "Release rows: the refund is back on chain"
REVERIFY = "Re-verify the failed payment on chain (then release rows if it sent nothing)"
REDRIVE = "Re-drive: run the next step for the current state"


def unit_of(currency: str) -> str:
    """The unit an amount of a batch's source currency is shown in ("usdterc20" is USDT)."""
    return "USDT" if currency.lower().startswith("usdt") else currency.upper()


def batch_title(kind: str, batch: Any) -> str:
    if hasattr(batch, "total_eth"):
        return f"{kind} #{batch.pk}: {format_amount(batch.total_eth, 'ETH')}"
    client = f" to {batch.client}" if getattr(batch, "client_id", None) else ""
    return f"{kind} #{batch.pk}{client}: {format_amount(batch.source_amount, unit_of(batch.source_currency))}"


def _batches(flow: ExchangeFundedFlow[Any]) -> QuerySet[Any]:
    related = ["host_payment"] + (["client"] if any(f.name == "client" for f in flow.model._meta.fields) else [])
    return flow.model._default_manager.select_related(*related)


def _review_action(batch: Any) -> tuple[str, str]:
    """The admin action that resolves a batch in review, and where it is taken."""
    host_payment = batch.host_payment
    if batch.status == BatchStatus.REFUNDED:
        return RELEASE_REFUNDED, admin_action_url(batch)
    if host_payment is not None and host_payment.status == HostPaymentStatus.FAILED:
        return REVERIFY, admin_action_url(host_payment)
    if host_payment is not None and host_payment.status == HostPaymentStatus.CONFIRMED:
        return RESUME, admin_action_url(batch)
    if host_payment is None or host_payment.status == HostPaymentStatus.CREATED:
        return CANCEL, admin_action_url(batch)
    return "Follow its host payment until it is mined or failed, then resume or cancel", admin_change_url(host_payment)


def review_source(flow: ExchangeFundedFlow[Any]) -> AttentionSource:
    def item(batch: Any) -> AttentionItem:
        label, url = _review_action(batch)
        return AttentionItem(
            kind=f"{flow.kind}_in_review",
            title=batch_title(flow.kind, batch),
            url=admin_change_url(batch),
            since=batch.since,
            reason=f"{batch.get_status_display()}: {batch.review_reason}",
            last_error=batch.last_error,
            action_label=label,
            action_url=url,
        )

    return queryset_source(
        f"{flow.kind}_in_review",
        f"{flow.kind.capitalize()}s in review (failed or refunded)",
        lambda: _batches(flow)
        .filter(status__in=REVIEW_STATUSES)
        .annotate(since=Coalesce(entered_status_at(flow.kind), "updated_at")),
        item,
        newest_first=("-since", "-id"),
    )


def stale_source(flow: ExchangeFundedFlow[Any]) -> AttentionSource:
    """Open batches past their deadline (the sweep should have moved them), or whose next step is
    overdue by more than PGP_STALE_AFTER_SECONDS."""

    def rows() -> QuerySet[Any]:
        now = timezone.now()
        return _batches(flow).filter(
            Q(deadline_at__lt=now) | Q(next_action_at__lt=now - timedelta(seconds=settings.PGP_STALE_AFTER_SECONDS)),
            status__in=OPEN_STATUSES,
        )

    def item(batch: Any) -> AttentionItem:
        marks: list[datetime] = [m for m in (batch.deadline_at, batch.next_action_at) if m is not None]
        due = min(marks) if marks else None
        past_deadline = batch.deadline_at is not None and batch.deadline_at < timezone.now()
        return AttentionItem(
            kind=f"{flow.kind}_stale",
            title=batch_title(flow.kind, batch),
            url=admin_change_url(batch),
            since=due,
            reason=(
                f"{batch.get_status_display()}, past its deadline {format_time(batch.deadline_at)}"
                if past_deadline
                else f"{batch.get_status_display()}, its next step was due at {format_time(batch.next_action_at)}"
            )
            + " and has not moved (is the recovery sweep running?)",
            last_error=batch.last_error,
            action_label=REDRIVE,
            action_url=admin_action_url(batch),
        )

    return queryset_source(
        f"{flow.kind}_stale",
        f"{flow.kind.capitalize()}s that stopped moving",
        rows,
        item,
        newest_first=("-updated_at", "-id"),
    )


def batch_attention_sources(flow: ExchangeFundedFlow[Any]) -> list[AttentionSource]:
    return [review_source(flow), stale_source(flow)]
