from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.models import PayoutAccumulation
from payouts.models import HostPayment
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline
from pgp_project.operations.scheduling import enqueue_after_commit

from . import exchange_flow
from .conversion import ADVANCE_TASK, CONVERSION_FLOW, cancel_unfunded_conversion
from .models import BatchConversion
from .states import TERMINAL_STATUSES, BatchStatus


class ConversionRowInline(ReadOnlyTabularInline):
    model = PayoutAccumulation
    fk_name = "batch_conversion"
    fields = ("id", "client", "status", "net_usd", "source_amount", "usdt_amount", "fee_usdt", "credit_usdt")
    readonly_fields = fields
    verbose_name_plural = "distribution per row (ETH contributed, USDT received, fee, client credit)"


class ConversionHostPaymentInline(ReadOnlyTabularInline):
    model = HostPayment
    fk_name = "conversion"
    fields = ("status", "amount", "to_address", "nonce", "tx_hash", "confirmations", "block_number", "last_error")
    readonly_fields = fields
    verbose_name_plural = "host payment (on-chain funding of the exchange)"


@admin.register(BatchConversion)
class BatchConversionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "row_count",
        "total_net_usd",
        "total_eth",
        "exchange_id",
        "expected_usdt",
        "received_usdt",
        "fee_usdt_total",
        "created_at",
        "completed_at",
    )
    list_filter = ("status",)
    search_fields = ("=id", "exchange_id", "payin_address")
    readonly_fields = ("received_vs_expected",)
    inlines = [ConversionHostPaymentInline, ConversionRowInline]
    actions = ["redrive", "cancel_unfunded", "resume_funded"]

    @admin.display(description="received vs expected USDT")
    def received_vs_expected(self, obj: BatchConversion) -> str:
        if obj.received_usdt is None or obj.expected_usdt is None:
            return "-"
        difference = obj.received_usdt - obj.expected_usdt
        return f"received {obj.received_usdt} of {obj.expected_usdt} expected ({difference:+})"

    @admin.action(description="Re-drive: run the next step for the current state", permissions=["operate"])
    def redrive(self, request: HttpRequest, queryset: QuerySet[BatchConversion]) -> None:
        ids = list(queryset.exclude(status__in=TERMINAL_STATUSES).values_list("id", flat=True))
        for conversion_id in ids:
            # The step itself is idempotent; a second click only repeats a harmless check.
            enqueue_after_commit(ADVANCE_TASK, conversion_id)
        self.message_user(request, f"Re-driving {len(ids)} open conversion(s).", messages.INFO)

    @admin.action(description="Cancel and release rows (only if nothing was sent)", permissions=["operate"])
    def cancel_unfunded(self, request: HttpRequest, queryset: QuerySet[BatchConversion]) -> None:
        cancelled = 0
        for conversion_id in queryset.values_list("id", flat=True):
            result = cancel_unfunded_conversion(conversion_id, reason=f"cancelled by {request.user} in the admin")
            cancelled += result.status == BatchStatus.CANCELLED
        self.message_user(
            request, f"{cancelled} conversion(s) cancelled; any that may have sent funds were left as they are."
        )

    @admin.action(description="Resume a funded batch in review (host payment confirmed)", permissions=["operate"])
    def resume_funded(self, request: HttpRequest, queryset: QuerySet) -> None:
        resumed = 0
        for batch_id in queryset.values_list("id", flat=True):
            result = exchange_flow.resume_funded(CONVERSION_FLOW, batch_id, note=f"by {request.user} in the admin")
            resumed += result.status == BatchStatus.EXCHANGING
        self.message_user(request, f"{resumed} batch(es) resumed; others did not qualify and were left as is.")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("batching.change_batchconversion")
