from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from integrations.assets import ASSETS, SendMethod, client_payout_currency_choices, unit_symbol
from integrations.exchange.registry import provider_names
from payments.admin import ClientAdmin, TraceStep, register_payment_tracer
from payments.models import Client, Payment, PayoutAccumulation
from payments.selectors import rows_of_payout
from pgp_project.admin_helpers import (
    DateRangeFilter,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    admin_link,
    history_table,
    html_table,
    money_column,
    status_line,
)
from pgp_project.admin_scale import ScaleChangeList, ScaleListMixin, choices_filter
from pgp_project.money_display import chain_reference, destination_reference, format_amount, format_time
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.transient import TransientError

from .approvals import ApprovalRefusedError, PayoutNotAwaitingApprovalError, approve_payout, reject_payout
from .client_payouts import PAYOUT_FLOW
from .exchange_batches.admin import (
    EXCHANGE_AND_CHAIN_FIELDSETS,
    TIMELINE_FIELDSETS,
    ExchangeBatchAdminMixin,
    batch_status_line,
)
from .exchange_batches.flow import exchange_funded_flow, exchange_funded_flows
from .exchange_batches.states import BatchStatus
from .host_payments.ports import chain_adapter
from .host_payments.reverify import reverify_on_chain
from .models import HOST_PAYMENT_MACHINE, HostPayment, HostPaymentCandidate, PayoutBatch
from .permissions import APPROVE_PAYOUT, OPERATE_BATCH

PAST_TENSE = {"approve": "approved", "reject": "rejected"}


def _exchange_providers() -> list[tuple[str, str]]:
    return [(name, name) for name in provider_names()]


def _sent_assets() -> list[tuple[str, str]]:
    """What a host payment may send: the assets the hot wallet pays out itself."""
    symbols = sorted({a.symbol for a in ASSETS.values() if a.send_method != SendMethod.NOT_SENT})
    return [(symbol, symbol.upper()) for symbol in symbols]


def _source_unit(batch: PayoutBatch) -> str:
    return unit_symbol(batch.source_currency)


def _payout_unit(batch: PayoutBatch) -> str:
    return unit_symbol(batch.payout_currency)


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ScaleListMixin, ExchangeBatchAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "client",
        "status_shown",
        "amount_shown",
        "payout_shown",
        "destination",
        "created_at",
    )
    list_filter = (
        "status",
        "kind",
        choices_filter("payout_currency", "payout currency", client_payout_currency_choices),
        choices_filter("exchange_provider", "exchange provider", _exchange_providers),
        ("created_at", DateRangeFilter),
    )
    ordering = ("-id",)  # newest first by the primary key: ids follow creation
    exact_search_fields = (
        "id",
        "exchange_id",
        "client__external_id",
        "host_payment__tx_hash",
        "payout_tx_hash",
        "payin_address",
        "wallet_address",
    )
    sortable_by = ("id", "created_at")  # indexed orders only
    search_help_text = (
        "Exact match: a payout id, an exchange id, a client's id, a transaction hash (ours or the exchange's), "
        "the exchange's deposit address or the client's wallet."
    )
    list_select_related = ("client", "host_payment")
    fieldsets = (
        ("Approval", {"fields": ("approval",), "classes": ("approval-line",)}),
        ("Status", {"fields": ("status_shown", "exchange_status", "next_action_at", "deadline_at", "completed_at")}),
        (
            "Payout",
            {"fields": ("kind", "client_link", "destination", "payment_link", "merged_into_link", "merged_payouts")},
        ),
        (
            "Money",
            {
                "fields": (
                    "amount_shown",
                    "source_shown",
                    "fee_shown",
                    "sent_value_shown",
                    "payout_shown",
                    "row_count",
                )
            },
        ),
        *EXCHANGE_AND_CHAIN_FIELDSETS,
        ("Rows and payments paid out by this payout", {"fields": ("rows_paid_out",)}),
        *TIMELINE_FIELDSETS,
    )
    readonly_fields = (
        "approval",
        "status_shown",
        "client_link",
        "destination",
        "payment_link",
        "merged_into_link",
        "merged_payouts",
        "amount_shown",
        "source_shown",
        "fee_shown",
        "sent_value_shown",
        "payout_shown",
        "payin_address_shown",
        "exchange_from_shown",
        "expected_shown",
        "host_payment_summary",
        "payout_tx",
        "routing_saving",
        "quotes_table",
        "rows_paid_out",
        "history",
    )
    actions = [*(ExchangeBatchAdminMixin.actions or ()), "approve_selected", "reject_selected"]
    flow = PAYOUT_FLOW
    operate_permission = OPERATE_BATCH

    source_shown = money_column("source_amount", _source_unit, "sent to the exchange")
    fee_shown = money_column("fee_amount", _source_unit, "fee retained")
    sent_value_shown = money_column("sent_value_usdt", "USDT", "value sent (USDT quote)")
    payout_shown = money_column("payout_amount", _payout_unit, "client received")
    exchange_from_shown = money_column("exchange_from_amount", _source_unit, "exchange asked for")
    expected_shown = money_column("expected_amount", _payout_unit, "exchange expected to pay")

    @admin.display(description="amount", ordering="total_usdt")
    def amount_shown(self, obj: PayoutBatch) -> str:
        return obj.amount_shown

    @admin.display(description="destination")
    def destination(self, obj: PayoutBatch) -> SafeString:
        return format_html(
            "{} on {}: {}",
            unit_symbol(obj.payout_currency),
            obj.payout_network,
            destination_reference(obj.payout_network, obj.wallet_address, obj.payout_extra_id),
        )

    @admin.display(description="client")
    def client_link(self, obj: PayoutBatch) -> SafeString | str:
        return admin_link("payments_client", obj.client_id, obj.client)

    @admin.display(description="payment (instant payout)")
    def payment_link(self, obj: PayoutBatch) -> SafeString | str:
        return admin_link("payments_payment", obj.payment_id, obj.payment) if obj.payment_id else "-"

    @admin.display(description="merged into")
    def merged_into_link(self, obj: PayoutBatch) -> SafeString | str:
        return admin_link("payouts_payoutbatch", obj.merged_into_id, obj.merged_into) if obj.merged_into_id else "-"

    @admin.display(description="payouts merged into this one")
    def merged_payouts(self, obj: PayoutBatch) -> SafeString | str:
        merged = list(PayoutBatch.objects.filter(merged_into=obj).select_related("client", "payment"))
        return html_table(
            ("payout", "payment", "amount"),
            (
                (
                    admin_link("payouts_payoutbatch", m.pk, m),
                    admin_link("payments_payment", m.payment_id, m.payment) if m.payment_id else "-",
                    m.amount_shown,
                )
                for m in merged
            ),
        )

    @admin.display(description="exchange's payout transaction")
    def payout_tx(self, obj: PayoutBatch) -> SafeString | str:
        return chain_reference(obj.payout_network, "tx", obj.payout_tx_hash)

    @admin.display(description="approval")
    def approval(self, obj: PayoutBatch) -> SafeString | str:
        """The approval line: status and reason, who decided and when, or the buttons."""
        if obj.status == BatchStatus.AWAITING_APPROVAL:
            limit = format_amount(get_runtime_settings().payout_approval_limit_usdt, "USDT")
            return format_html(
                '<span class="approval-awaiting">awaiting approval: {} is above the approval limit of {}</span> '
                '<a class="button approve-button" id="approve-payout" href="{}">Approve…</a> '
                '<a class="button reject-button" id="reject-payout" href="{}">Reject…</a>',
                format_amount(obj.sent_value_usdt, "USDT") if obj.sent_value_usdt is not None else obj.amount_shown,
                limit,
                reverse("admin:payouts_payoutbatch_approve", args=[obj.pk]),
                reverse("admin:payouts_payoutbatch_reject", args=[obj.pk]),
            )
        if obj.approved_by_id:
            return format_html(
                '<span class="approval-approved">approved by {} at {}</span>',
                obj.approved_by,
                format_time(obj.approved_at),
            )
        if obj.rejected_by_id:
            return format_html(
                '<span class="approval-rejected">rejected by {} at {}: {}</span>',
                obj.rejected_by,
                format_time(obj.rejected_at),
                obj.review_reason or "-",
            )
        return mark_safe('<span class="approval-not-required">not required (within the approval limit)</span>')

    @admin.display(description="rows paid out by this payout")
    def rows_paid_out(self, obj: PayoutBatch) -> SafeString | str:
        return html_table(
            ("row", "payment", "conversion", "status", "client credit", "paid out at"),
            (
                (
                    admin_link("payments_payoutaccumulation", row.pk, f"row #{row.pk}"),
                    admin_link("payments_payment", row.payment_id, row.payment),
                    admin_link(
                        "batching_batchconversion", row.batch_conversion_id, f"conversion #{row.batch_conversion_id}"
                    ),
                    row.get_status_display(),
                    format_amount(row.credit_usdt, "USDT"),
                    format_time(row.paid_out_at),
                )
                for row in rows_of_payout(obj.pk)
            ),
            css_class="payout-rows",
        )

    # --- approve and reject: one payout on its own page, or several with a confirmation page ---

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
        batch = get_object_or_404(PayoutBatch.objects.select_related("client"), pk=batch_id)
        if request.method == "POST":
            try:
                decide(batch.pk, request.user)
                self.message_user(request, f"Payout #{batch.pk}: {PAST_TENSE[button.lower()]}.", messages.SUCCESS)
            except PayoutNotAwaitingApprovalError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            except ApprovalRefusedError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:payouts_payoutbatch_change", batch.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "batch": batch,
            "amount": batch.amount_shown,
            "destination": self.destination(batch),
            "question": question,
            "button": button,
            "approval_limit": format_amount(get_runtime_settings().payout_approval_limit_usdt, "USDT"),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payouts/payoutbatch/decision.html", context)

    @admin.action(description="Approve the selected payouts…", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[PayoutBatch]) -> HttpResponse | None:
        return self._decide_many(request, queryset, approve_payout, action="approve_selected", verb="approve")

    @admin.action(description="Reject the selected payouts…", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[PayoutBatch]) -> HttpResponse | None:
        return self._decide_many(request, queryset, reject_payout, action="reject_selected", verb="reject")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PAYOUT)

    def _decide_many(
        self, request: HttpRequest, queryset: QuerySet[PayoutBatch], decide: Callable, *, action: str, verb: str
    ) -> HttpResponse | None:
        """First a confirmation page listing the selected payouts (like Django's delete
        confirmation); once confirmed, each payout is decided on its own through the approval
        service, which checks the permission and the second-person rule, and the outcome of
        each is reported."""
        batches = list(queryset.select_related("client").order_by("id"))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"{verb.capitalize()} {len(batches)} payout(s)?",
                "verb": verb,
                "verb_past": PAST_TENSE[verb],
                "action": action,
                "batches": [
                    {
                        "batch": batch,
                        "amount": batch.amount_shown,
                        "destination": self.destination(batch),
                        "awaiting": batch.status == BatchStatus.AWAITING_APPROVAL,
                    }
                    for batch in batches
                ],
                "awaiting_count": sum(batch.status == BatchStatus.AWAITING_APPROVAL for batch in batches),
                "approval_limit": format_amount(get_runtime_settings().payout_approval_limit_usdt, "USDT"),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
                "media": self.media,
            }
            return TemplateResponse(request, "admin/payouts/payoutbatch/bulk_decision.html", context)
        for batch in batches:
            try:
                decided = decide(batch.pk, request.user)
            except PayoutNotAwaitingApprovalError as exc:
                self.message_user(request, f"Payout #{batch.pk}: not {PAST_TENSE[verb]}: {exc}.", messages.WARNING)
            except ApprovalRefusedError as exc:
                self.message_user(request, f"Payout #{batch.pk}: refused: {exc}.", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Payout #{batch.pk}: {PAST_TENSE[verb]} ({decided.amount_shown}, now {decided.status}).",
                    messages.SUCCESS,
                )
        return None


class CandidateTransactionInline(ReadOnlyTabularInline):
    model = HostPaymentCandidate
    fields = ("created_at", "tx", "fees")
    readonly_fields = fields
    show_change_link = False
    verbose_name_plural = "every transaction signed for this payment (same slot; the mined one counts)"

    @admin.display(description="transaction")
    def tx(self, obj: HostPaymentCandidate) -> SafeString | str:
        return chain_reference(obj.host_payment.chain, "tx", obj.tx_hash)

    @admin.display(description="fees")
    def fees(self, obj: HostPaymentCandidate) -> str:
        return chain_adapter(obj.host_payment.chain).describe_candidate_fees(obj.fee_details or {}) or "-"


def _batch_of(host_payment: HostPayment) -> object | None:
    """The batch a host payment funds, through the registered flow of its kind (a conversion
    belongs to the app above this one: found without importing it)."""
    try:
        model = exchange_funded_flow(host_payment.owner_kind).model
    except LookupError:
        return None
    return model._default_manager.filter(host_payment_id=host_payment.pk).first()


def _batch_link(batch: object | None) -> SafeString | str:
    if batch is None:
        return "-"
    opts = batch._meta  # type: ignore[attr-defined]
    return admin_link(f"{opts.app_label}_{opts.model_name}", batch.pk, batch)  # type: ignore[attr-defined]


class HostPaymentChangeList(ScaleChangeList):
    """The batch each listed host payment funds, read for the whole page at once (one query per
    kind of owner) instead of one query per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page = list(self.result_list)
        by_kind: dict[str, list[HostPayment]] = {}
        for host_payment in page:
            by_kind.setdefault(host_payment.owner_kind, []).append(host_payment)
        for kind, host_payments in by_kind.items():
            try:
                model = exchange_funded_flow(kind).model
            except LookupError:
                funded: dict[int, object] = {}
            else:
                ids = [hp.pk for hp in host_payments]
                # select_related(): a batch's name names its client (a payout's __str__).
                batches = model._default_manager.filter(host_payment_id__in=ids).select_related()
                funded = {b.host_payment_id: b for b in batches}
            for host_payment in host_payments:
                host_payment._funded_batch = funded.get(host_payment.pk)  # type: ignore[attr-defined]
        self.result_list = page


@admin.register(HostPayment)
class HostPaymentAdmin(ScaleListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status_shown",
        "batch_link",
        "amount_shown",
        "to_shown",
        "tx_shown",
        "confirmations",
        "created_at",
    )
    list_filter = (
        "status",
        choices_filter("owner_kind", "funds", lambda: [(flow.kind, flow.kind) for flow in exchange_funded_flows()]),
        choices_filter("chain", "chain", lambda: [(chain, chain) for chain in settings.PGP_CHAINS]),
        choices_filter("asset", "asset", _sent_assets),
        "waiting_for",
        ("created_at", DateRangeFilter),
    )
    ordering = ("-id",)
    exact_search_fields = ("id", "tx_hash", "to_address", "candidates__tx_hash")
    sortable_by = ("id",)  # indexed orders only
    search_help_text = "Exact match: a host payment id, a transaction hash (any candidate's), or the address paid."
    fieldsets = (
        (None, {"fields": ("status_shown", "batch_link", "owner_kind")}),
        ("Money", {"fields": ("amount_shown", "amount_base_units", "network_fee_shown", "signing_shown")}),
        (
            "On chain",
            {"fields": ("chain", "from_shown", "to_shown", "tx_shown", "confirmations", "block_number")},
        ),
        (
            "Times",
            {"fields": ("created_at", "signed_at", "broadcast_at", "confirmed_at", "next_action_at", "deadline_at")},
        ),
        ("Timeline", {"fields": ("history",)}),
    )
    readonly_fields = (
        "status_shown",
        "batch_link",
        "amount_shown",
        "network_fee_shown",
        "signing_shown",
        "from_shown",
        "to_shown",
        "tx_shown",
        "history",
    )
    inlines = [CandidateTransactionInline]
    actions = ["reverify"]

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: HostPayment) -> SafeString:
        waiting = obj.get_waiting_for_display()
        return status_line(
            obj.status,
            label=obj.get_status_display(),
            reason=f"waiting for {waiting}" if waiting else "",
            last_error=obj.last_error,
            attempts=obj.attempts,
        )

    @admin.display(description="funds")
    def batch_link(self, obj: HostPayment) -> SafeString | str:
        # On the list, the page's batches were read in one query per kind (HostPaymentChangeList).
        batch = obj._funded_batch if hasattr(obj, "_funded_batch") else _batch_of(obj)
        return _batch_link(batch)

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return HostPaymentChangeList

    @admin.display(description="amount", ordering="amount")
    def amount_shown(self, obj: HostPayment) -> str:
        return f"{format_amount(obj.amount, obj.asset)} on {obj.chain}"

    @admin.display(description="network fee paid")
    def network_fee_shown(self, obj: HostPayment) -> str:
        return chain_adapter(obj.chain).format_network_fee(obj.network_fee)

    @admin.display(description="how it was signed")
    def signing_shown(self, obj: HostPayment) -> SafeString | str:
        details = chain_adapter(obj.chain).signing_details(obj)
        if not details:
            return "-"
        return format_html_join(mark_safe("<br>"), "{}: {}", details)

    @admin.display(description="from")
    def from_shown(self, obj: HostPayment) -> SafeString | str:
        return chain_reference(obj.chain, "address", obj.from_address)

    @admin.display(description="to")
    def to_shown(self, obj: HostPayment) -> SafeString | str:
        return chain_reference(obj.chain, "address", obj.to_address)

    @admin.display(description="transaction", ordering="tx_hash")
    def tx_shown(self, obj: HostPayment) -> SafeString | str:
        return chain_reference(obj.chain, "tx", obj.tx_hash)

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

    @admin.display(description="timeline (every transition)")
    def history(self, obj: HostPayment) -> SafeString | str:
        return history_table(HOST_PAYMENT_MACHINE.subject, obj.pk)


def _payout_steps(payment: Payment, row: PayoutAccumulation | None) -> Iterable[TraceStep]:
    """A payment's payout: the one its accumulation row is in, or its instant payout (and the
    payout that one was merged into), with the payout's on-chain transactions."""
    payouts = PayoutBatch.objects.select_related("client", "host_payment")
    batch = None
    if row is not None and row.payout_batch_id is not None:
        batch = payouts.filter(pk=row.payout_batch_id).first()
    elif row is None:
        batch = payouts.filter(payment=payment).first()
    steps = []
    while batch is not None:
        steps.append(
            TraceStep(
                what="payout",
                link=admin_link("payouts_payoutbatch", batch.pk, batch),
                status=batch_status_line(batch),
                amount=batch.amount_shown,
                on_chain=payout_transactions(batch),
            )
        )
        batch = payouts.filter(pk=batch.merged_into_id).first() if batch.merged_into_id else None
    return steps


def payout_transactions(batch: PayoutBatch) -> SafeString | str:
    parts = []
    if batch.host_payment is not None and batch.host_payment.tx_hash:
        parts.append(
            format_html(
                "funding {} ({})",
                chain_reference(batch.host_payment.chain, "tx", batch.host_payment.tx_hash),
                admin_link("payouts_hostpayment", batch.host_payment_id, f"host payment #{batch.host_payment_id}"),
            )
        )
    if batch.payout_tx_hash:
        parts.append(format_html("to the client {}", chain_reference(batch.payout_network, "tx", batch.payout_tx_hash)))
    return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) if parts else "-"


register_payment_tracer(30, _payout_steps)


# The client page, from the payments app, with this app's part added: the client's payouts.
admin.site.unregister(Client)


@admin.register(Client)
class ClientWithPayoutsAdmin(ClientAdmin):
    readonly_fields = (*ClientAdmin.readonly_fields, "recent_payouts")

    @admin.display(description="recent payouts")
    def recent_payouts(self, obj: Client) -> SafeString | str:
        if obj.pk is None:
            return "-"
        batches = PayoutBatch.objects.filter(client=obj).select_related("client", "host_payment")[:10]
        return html_table(
            ("payout", "status", "created"),
            (
                (admin_link("payouts_payoutbatch", b.pk, b), batch_status_line(b), format_time(b.created_at))
                for b in batches
            ),
            empty="none yet",
            css_class="recent-payouts",
        )
