from django.contrib import admin

from payments.models import PayoutAccumulation
from payouts.models import HostPayment
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline

from .admin_actions import ExchangeBatchActions
from .conversion import CONVERSION_FLOW
from .models import BatchConversion


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
class BatchConversionAdmin(ExchangeBatchActions, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    flow = CONVERSION_FLOW
    operate_permission = "batching.change_batchconversion"

    @admin.display(description="received vs expected USDT")
    def received_vs_expected(self, obj: BatchConversion) -> str:
        if obj.received_usdt is None or obj.expected_usdt is None:
            return "-"
        difference = obj.received_usdt - obj.expected_usdt
        return f"received {obj.received_usdt} of {obj.expected_usdt} expected ({difference:+})"
