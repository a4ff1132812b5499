from django.contrib import admin

from payments.models import PayoutAccumulation
from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline

from .models import HostPayment, PayoutBatch


class PayoutRowInline(ReadOnlyTabularInline):
    model = PayoutAccumulation
    fk_name = "payout_batch"
    fields = ("id", "payment", "status", "credit_usdt", "paid_out_at")
    readonly_fields = fields
    verbose_name_plural = "rows paid out by this batch"


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
    inlines = [PayoutRowInline]


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
