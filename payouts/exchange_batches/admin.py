"""The operator actions and read-only panels every exchange-funded batch admin shares; each
action goes through the flow's services, is safe to click twice, and is kept in the history."""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from pgp_project.admin_helpers import history_table, html_table

from ..models import ExchangeFundedBatch
from .flow import ExchangeFundedFlow
from .operator import cancel_unfunded, redrive, release_refunded, release_unsent, resume_funded
from .states import BatchStatus


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

    @admin.display(description="host payment (the on-chain funding of the exchange)")
    def host_payment_summary(self, obj: ExchangeFundedBatch) -> SafeString | str:
        host_payment = obj.host_payment
        if host_payment is None:
            return "none yet"
        link = format_html(
            '<a href="{}">#{}</a>', reverse("admin:payouts_hostpayment_change", args=[host_payment.pk]), host_payment.pk
        )
        return html_table(
            ("payment", "status", "amount", "to", "tx hash", "confirmations", "block", "last error"),
            [
                (
                    link,
                    host_payment.status,
                    f"{host_payment.amount} {host_payment.asset.upper()} on {host_payment.chain}",
                    host_payment.to_address,
                    host_payment.tx_hash or "-",
                    host_payment.confirmations,
                    host_payment.block_number or "-",
                    host_payment.last_error or "-",
                )
            ],
        )

    @admin.display(description="history (every transition and operator action)")
    def history(self, obj: ExchangeFundedBatch) -> SafeString | str:
        return history_table(self.flow.kind, obj.pk)
