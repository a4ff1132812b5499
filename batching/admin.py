from django.contrib import admin

from payments.models import PayoutAccumulation
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline

from .models import BatchConversion


class ConversionRowInline(ReadOnlyTabularInline):
    model = PayoutAccumulation
    fk_name = "batch_conversion"
    fields = ("id", "client", "status", "net_usd", "source_amount", "usdt_amount", "fee_usdt", "credit_usdt")
    readonly_fields = fields
    verbose_name_plural = "rows (ETH contributed and USDT distributed)"


@admin.register(BatchConversion)
class BatchConversionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "row_count",
        "total_net_usd",
        "total_eth",
        "exchange_id",
        "received_usdt",
        "created_at",
        "completed_at",
    )
    list_filter = ("status",)
    search_fields = ("=id", "exchange_id", "payin_address")
    inlines = [ConversionRowInline]
