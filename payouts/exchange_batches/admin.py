"""The operator actions and read-only panels every exchange-funded batch admin shares; each
action goes through the flow's services, is safe to click twice, and is kept in the history."""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from pgp_project.admin_helpers import admin_link, history_table, html_table, status_line
from pgp_project.money_display import chain_reference, format_amount

from ..models import ExchangeFundedBatch
from .flow import ExchangeFundedFlow
from .operator import cancel_unfunded, redrive, release_refunded, release_unsent, resume_funded
from .quotes import quotes_of, routing_saving
from .states import CLOSED_STATUSES, BatchStatus

# The fieldsets both batch pages share (conversions and payouts): their exchange and what went
# on chain, then the timeline and the record's own times.
EXCHANGE_AND_CHAIN_FIELDSETS: tuple[Any, ...] = (
    (
        "Exchange",
        {
            "fields": (
                "exchange_provider",
                "exchange_id",
                "payin_address_shown",
                "exchange_from_shown",
                "expected_shown",
                "exchange_valid_until",
                "abandoned_exchange_ids",
            )
        },
    ),
    ("Routing (every provider's quote, per round)", {"fields": ("routing_saving", "quotes_table")}),
    ("On chain", {"fields": ("host_payment_summary", "payout_tx")}),
)
TIMELINE_FIELDSETS: tuple[Any, ...] = (
    ("Timeline", {"fields": ("history",)}),
    ("Recorded", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
)


class ExchangeBatchAdminMixin:
    """For a ModelAdmin of an exchange-funded batch: set `flow` and `operate_permission`."""

    flow: ExchangeFundedFlow[Any]
    operate_permission: str
    actions: Sequence[Any] | None = [
        "redrive",
        "cancel_unfunded",
        "resume_funded",
        "release_unsent",
        "release_refunded",
    ]

    @admin.action(description="Re-drive: run the next step for the current state", permissions=["operate"])
    def redrive(self, request: HttpRequest, queryset: QuerySet) -> None:
        redriven = redrive(self.flow, list(queryset.values_list("id", flat=True)), actor=request.user)
        self.message_user(request, f"Re-driving {len(redriven)} open {self.flow.kind}(s).", messages.INFO)  # type: ignore[attr-defined]

    @admin.action(description="Cancel and release rows (only if nothing was sent)", permissions=["operate"])
    def cancel_unfunded(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = f"cancelled by {request.user} in the admin"
        cancelled = sum(
            cancel_unfunded(self.flow, batch_id, reason=reason, actor=request.user).status == BatchStatus.CANCELLED
            for batch_id in queryset.values_list("id", flat=True)
        )
        self.message_user(  # type: ignore[attr-defined]
            request, f"{cancelled} {self.flow.kind}(s) cancelled; any that may have sent funds were kept."
        )

    @admin.action(description="Resume a funded batch in review (host payment confirmed)", permissions=["operate"])
    def resume_funded(self, request: HttpRequest, queryset: QuerySet) -> None:
        note = f"by {request.user} in the admin"
        resumed = sum(
            resume_funded(self.flow, batch_id, note=note, actor=request.user).status == BatchStatus.EXCHANGING
            for batch_id in queryset.values_list("id", flat=True)
        )
        self.message_user(  # type: ignore[attr-defined]
            request, f"{resumed} {self.flow.kind}(s) resumed; others did not qualify and were kept."
        )

    @admin.action(description="Release rows: the chain shows the failed funding sent nothing", permissions=["operate"])
    def release_unsent(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._report(request, queryset, release_unsent)

    @admin.action(description="Release rows: the refund is back on chain", permissions=["operate"])
    def release_refunded(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._report(request, queryset, release_refunded)

    def _report(self, request: HttpRequest, queryset: QuerySet, action: Any) -> None:
        for batch_id in queryset.values_list("id", flat=True):
            batch, outcome = action(self.flow, batch_id, actor=request.user)
            level = messages.SUCCESS if batch.status == BatchStatus.CANCELLED else messages.WARNING
            self.message_user(request, f"{self.flow.kind} #{batch_id}: {outcome}", level)  # type: ignore[attr-defined]

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(self.operate_permission)

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: ExchangeFundedBatch) -> SafeString:
        """The status with why it is there and what went wrong last: the batch's own error, or
        what its host payment waits for or failed on (a payout stuck in `created` says why)."""
        return batch_status_line(obj)

    @admin.display(description="host payment (the on-chain funding of the exchange)")
    def host_payment_summary(self, obj: ExchangeFundedBatch) -> SafeString | str:
        host_payment = obj.host_payment
        if host_payment is None:
            return "none yet"
        return html_table(
            ("payment", "status", "amount", "from", "to", "tx", "confirmations", "block"),
            [
                (
                    admin_link("payouts_hostpayment", host_payment.pk, f"host payment #{host_payment.pk}"),
                    status_line(
                        host_payment.status,
                        label=host_payment.get_status_display(),
                        reason=f"waiting for {host_payment.get_waiting_for_display()}"
                        if host_payment.waiting_for
                        else "",
                        last_error=host_payment.last_error,
                        attempts=host_payment.attempts,
                    ),
                    f"{format_amount(host_payment.amount, host_payment.asset)} on {host_payment.chain}",
                    chain_reference(host_payment.chain, "address", host_payment.from_address),
                    chain_reference(host_payment.chain, "address", host_payment.to_address),
                    chain_reference(host_payment.chain, "tx", host_payment.tx_hash),
                    host_payment.confirmations,
                    host_payment.block_number or "-",
                )
            ],
            css_class="host-payment-summary",
        )

    @admin.display(description="exchange's deposit address")
    def payin_address_shown(self, obj: ExchangeFundedBatch) -> SafeString | str:
        try:
            chain = self.flow.host_asset(obj).chain
        except LookupError:  # an asset the registry does not know: shown, not linked
            chain = ""
        return chain_reference(chain, "address", obj.payin_address)

    @admin.display(description="what routing saved")
    def routing_saving(self, obj: ExchangeFundedBatch) -> str:
        """The chosen quote against the runner-up of its round, in the asset the payee receives."""
        saving = routing_saving(quotes_of(self.flow.kind, obj.pk))
        if saving is None:
            return "no exchange chosen by quotes yet"
        unit = self.flow.pair(obj).target.symbol.upper()
        chosen = f"{saving.chosen.provider}: {format_amount(saving.chosen.to_amount, unit)}"
        if saving.runner_up is None or saving.amount is None:
            return f"{chosen} (the only quote)"
        return (
            f"{chosen}, {format_amount(saving.amount, unit)} ({saving.basis_points} bps) more than "
            f"{saving.runner_up.provider}'s {format_amount(saving.runner_up.to_amount, unit)}"
        )

    @admin.display(description="quotes")
    def quotes_table(self, obj: ExchangeFundedBatch) -> SafeString | str:
        unit = self.flow.pair(obj).target.symbol.upper()
        return html_table(
            ("round", "provider", "receives", "rate id", "valid until", "why not", "chosen", "quoted at"),
            [
                (
                    quote.round,
                    quote.provider,
                    format_amount(quote.to_amount, unit) if quote.to_amount is not None else "-",
                    quote.rate_id or "-",
                    quote.valid_until or "-",
                    quote.problem or "-",
                    "chosen" if quote.chosen else "",
                    quote.quoted_at,
                )
                for quote in quotes_of(self.flow.kind, obj.pk)
            ],
            empty="not quoted yet",
            css_class="exchange-quotes",
        )

    @admin.display(description="timeline (every transition and operator action)")
    def history(self, obj: ExchangeFundedBatch) -> SafeString | str:
        return history_table(self.flow.kind, obj.pk)


def batch_status_line(obj: ExchangeFundedBatch) -> SafeString:
    """A batch's status line for lists, pages and a payment's trace: its review reason, its own
    last error and attempts, and while it is open what its host payment waits for or failed on."""
    host_payment = obj.host_payment
    extra = ""
    if host_payment is not None and obj.status not in CLOSED_STATUSES:
        waiting = host_payment.get_waiting_for_display()
        extra = f"host payment #{host_payment.pk} {host_payment.status}"
        if waiting:
            extra += f", waiting for {waiting}"
        if host_payment.last_error:
            extra += f"; its last error: {host_payment.last_error}"
    if obj.exchange_status:
        extra = f"exchange says {obj.exchange_status}" + (f"; {extra}" if extra else "")
    return status_line(
        obj.status,
        label=obj.get_status_display(),
        reason=obj.review_reason,
        last_error=obj.last_error,
        attempts=obj.attempts,
        next_action_at=obj.next_action_at if obj.status not in CLOSED_STATUSES else None,
        extra=extra,
    )
