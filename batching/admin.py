from django.contrib import admin
from django.utils.safestring import SafeString

from payments.selectors import rows_of_conversion
from payouts.exchange_batches.admin import ExchangeBatchAdminMixin
from payouts.permissions import OPERATE_BATCH
from pgp_project.admin_helpers import ReadOnlyAdminMixin, html_table
from pgp_project.money import USDT_QUANTUM

from .conversion import CONVERSION_FLOW
from .models import BatchConversion


@admin.register(BatchConversion)
class BatchConversionAdmin(ExchangeBatchAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "row_count",
        "total_net_usd",
        "total_eth",
        "exchange_id",
        "expected_amount",
        "received_usdt",
        "fee_usdt_total",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "exchange_provider")
    search_fields = ("=id", "exchange_id", "payin_address")
    readonly_fields = ("received_vs_expected", "host_payment_summary", "distribution", "history")
    flow = CONVERSION_FLOW
    operate_permission = OPERATE_BATCH

    @admin.display(description="received vs expected USDT")
    def received_vs_expected(self, obj: BatchConversion) -> str:
        if obj.received_usdt is None or obj.expected_amount is None:
            return "-"
        expected = obj.expected_amount.quantize(USDT_QUANTUM)
        difference = obj.received_usdt - expected
        return f"received {obj.received_usdt} of {expected} expected ({difference:+})"

    @admin.display(description="distribution per row (ETH contributed, USDT received, fee, client credit)")
    def distribution(self, obj: BatchConversion) -> SafeString | str:
        return html_table(
            ("row", "client", "status", "net USD", "ETH", "USDT", "fee USDT", "credit USDT"),
            (
                (
                    row.pk,
                    row.client,
                    row.status,
                    row.net_usd,
                    row.source_amount,
                    row.usdt_amount,
                    row.fee_usdt,
                    row.credit_usdt,
                )
                for row in rows_of_conversion(obj.pk)
            ),
        )
