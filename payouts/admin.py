from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from batching.admin_actions import ExchangeBatchActions
from batching.states import BatchStatus
from payments.models import PayoutAccumulation
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline
from pgp_project.operations.selectors import get_runtime_settings

from .client_payouts import (
    PAYOUT_FLOW,
    PayoutNotAwaitingApproval,
    approve_payout,
    reject_payout,
)
from .models import HostPayment, HostPaymentAttempt, PayoutBatch


class PayoutRowInline(ReadOnlyTabularInline):
    model = PayoutAccumulation
    fk_name = "payout_batch"
    fields = ("id", "payment", "status", "credit_usdt", "paid_out_at")
    readonly_fields = fields
    verbose_name_plural = "rows paid out by this batch"


class PayoutHostPaymentInline(ReadOnlyTabularInline):
    model = HostPayment
    fk_name = "payout_batch"
    fields = ("status", "asset", "amount", "to_address", "nonce", "tx_hash", "confirmations", "last_error")
    readonly_fields = fields
    verbose_name_plural = "host payment (on-chain funding of the exchange)"


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ExchangeBatchActions, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "client",
        "status",
        "total_usdt",
        "source_amount",
        "source_currency",
        "payout_currency",
        "payout_amount",
        "created_at",
    )
    list_filter = ("status", "kind", "payout_currency")
    search_fields = ("=id", "exchange_id", "client__external_id")
    list_select_related = ("client",)
    readonly_fields = ("approval",)
    inlines = [PayoutHostPaymentInline, PayoutRowInline]
    flow = PAYOUT_FLOW
    operate_permission = "payouts.change_payoutbatch"

    @admin.display(description="approval")
    def approval(self, obj: PayoutBatch) -> str:
        if obj.status == BatchStatus.AWAITING_APPROVAL:
            return format_html(
                '<a class="button" href="{}">Approve…</a> <a class="button" href="{}">Reject…</a>',
                reverse("admin:payouts_payoutbatch_approve", args=[obj.pk]),
                reverse("admin:payouts_payoutbatch_reject", args=[obj.pk]),
            )
        if obj.approved_by_id:
            return f"approved by {obj.approved_by} at {obj.approved_at:%Y-%m-%d %H:%M:%S %Z}"
        if obj.rejected_by_id:
            return f"rejected by {obj.rejected_by} at {obj.rejected_at:%Y-%m-%d %H:%M:%S %Z}"
        return "not required"

    def get_urls(self) -> list:
        decide = self.admin_site.admin_view
        return [
            path("<int:batch_id>/approve/", decide(self.approve_view), name="payouts_payoutbatch_approve"),
            path("<int:batch_id>/reject/", decide(self.reject_view), name="payouts_payoutbatch_reject"),
            *super().get_urls(),
        ]

    def approve_view(self, request: HttpRequest, batch_id: int) -> HttpResponse:
        return self._decision(request, batch_id, approve_payout, "Approve payout", "Send this payout?", "Approve")

    def reject_view(self, request: HttpRequest, batch_id: int) -> HttpResponse:
        return self._decision(
            request, batch_id, reject_payout, "Reject payout", "Cancel it and return the rows to the balance?", "Reject"
        )

    def _decision(
        self, request: HttpRequest, batch_id: int, decide: Callable, title: str, question: str, button: str
    ) -> HttpResponse:
        if not request.user.has_perm("payouts.change_payoutbatch"):
            raise PermissionDenied
        batch = get_object_or_404(PayoutBatch, pk=batch_id)
        if request.method == "POST":
            try:
                decide(batch.pk, request.user)
                self.message_user(request, f"Payout #{batch.pk}: {button.lower()}d.", messages.SUCCESS)
            except PayoutNotAwaitingApproval as exc:
                self.message_user(request, str(exc), messages.WARNING)
            return redirect("admin:payouts_payoutbatch_change", batch.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "batch": batch,
            "question": question,
            "button": button,
            "approval_limit": get_runtime_settings().payout_approval_limit_usdt,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payouts/payoutbatch/decision.html", context)


class CandidateTransactionInline(ReadOnlyTabularInline):
    model = HostPaymentAttempt
    fields = ("created_at", "nonce", "tx_hash", "max_fee_per_gas", "max_priority_fee_per_gas")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "every transaction signed for this payment (same nonce; the mined one counts)"


@admin.register(HostPayment)
class HostPaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "asset",
        "amount",
        "to_address",
        "nonce",
        "tx_hash",
        "confirmations",
        "conversion",
        "payout_batch",
        "created_at",
    )
    list_filter = ("status", "asset")
    search_fields = ("tx_hash", "to_address")
    list_select_related = ("conversion", "payout_batch")
    inlines = [CandidateTransactionInline]
