from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from payments.admin import ClientAdmin
from payments.models import Client
from payments.selectors import rows_of_payout
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline, history_table, html_table
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.transient import TransientError

from .approvals import ApprovalRefusedError, PayoutNotAwaitingApprovalError, approve_payout, reject_payout
from .client_payouts import PAYOUT_FLOW
from .exchange_batches.admin import ExchangeBatchAdminMixin
from .exchange_batches.states import BatchStatus
from .host_payments.reverify import reverify_on_chain
from .models import HOST_PAYMENT_MACHINE, EvmTransfer, HostPayment, HostPaymentCandidate, PayoutBatch
from .permissions import APPROVE_PAYOUT, OPERATE_BATCH


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ExchangeBatchAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    list_filter = ("status", "kind", "payout_currency", "exchange_provider")
    search_fields = ("=id", "exchange_id", "client__external_id")
    list_select_related = ("client",)
    readonly_fields = ("approval", "host_payment_summary", "rows_paid_out", "history")
    flow = PAYOUT_FLOW
    operate_permission = OPERATE_BATCH

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

    @admin.display(description="rows paid out by this batch")
    def rows_paid_out(self, obj: PayoutBatch) -> SafeString | str:
        return html_table(
            ("row", "payment", "status", "credit USDT", "paid out at"),
            (
                (row.pk, row.payment, row.status, row.credit_usdt, row.paid_out_at or "-")
                for row in rows_of_payout(obj.pk)
            ),
        )

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
        if not request.user.has_perm(APPROVE_PAYOUT):
            raise PermissionDenied
        batch = get_object_or_404(PayoutBatch, pk=batch_id)
        if request.method == "POST":
            try:
                decide(batch.pk, request.user)
                self.message_user(request, f"Payout #{batch.pk}: {button.lower()}d.", messages.SUCCESS)
            except PayoutNotAwaitingApprovalError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            except ApprovalRefusedError as exc:
                self.message_user(request, str(exc), messages.ERROR)
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
    model = HostPaymentCandidate
    fields = ("created_at", "tx_hash", "fee_details")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "every transaction signed for this payment (same slot; the mined one counts)"


class EvmTransferInline(ReadOnlyTabularInline):
    model = EvmTransfer
    fields = ("sender", "nonce", "gas_limit", "max_fee_per_gas", "max_priority_fee_per_gas")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "EVM nonce and fees of the current transaction"


@admin.register(HostPayment)
class HostPaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "owner_kind",
        "chain",
        "asset",
        "amount",
        "to_address",
        "tx_hash",
        "confirmations",
        "created_at",
    )
    list_filter = ("status", "owner_kind", "chain", "asset")
    search_fields = ("tx_hash", "to_address")
    readonly_fields = ("history",)
    inlines = [EvmTransferInline, CandidateTransactionInline]
    actions = ["reverify"]

    @admin.action(
        description="Re-verify a failed payment on chain (a lagging node may have misled us)", permissions=["operate"]
    )
    def reverify(self, request: HttpRequest, queryset: QuerySet[HostPayment]) -> None:
        for host_payment_id in queryset.values_list("id", flat=True):
            try:
                outcome = reverify_on_chain(host_payment_id, actor=request.user)
            except TransientError as exc:  # the node is down or slow: say so, change nothing
                outcome = f"host payment #{host_payment_id}: the chain cannot be asked now ({exc}); try again"
            self.message_user(request, outcome, messages.INFO)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(OPERATE_BATCH)

    @admin.display(description="history (every transition)")
    def history(self, obj: HostPayment) -> SafeString | str:
        return history_table(HOST_PAYMENT_MACHINE.subject, obj.pk)


# The client page, from the payments app, with this app's part added: the client's payouts.
admin.site.unregister(Client)


@admin.register(Client)
class ClientWithPayoutsAdmin(ClientAdmin):
    readonly_fields = (*ClientAdmin.readonly_fields, "recent_payouts")

    @admin.display(description="recent payouts")
    def recent_payouts(self, obj: Client) -> SafeString | str:
        if obj.pk is None:
            return "-"
        batches = PayoutBatch.objects.filter(client=obj).order_by("-created_at")[:10]
        links = [
            format_html(
                '<a href="{}">#{} {} {} {}</a>',
                reverse("admin:payouts_payoutbatch_change", args=[b.pk]),
                b.pk,
                b.status,
                b.source_amount,
                b.source_currency,
            )
            for b in batches
        ]
        return format_html_join(mark_safe("<br>"), "{}", ((link,) for link in links)) if links else "none yet"
