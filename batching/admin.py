from collections.abc import Iterable

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from integrations.exchange.registry import provider_names
from payments.admin import TraceStep, register_payment_tracer
from payments.models import Payment, PayoutAccumulation
from payments.selectors import rows_of_conversion
from payouts.exchange_batches.admin import (
    EXCHANGE_AND_CHAIN_FIELDSETS,
    TIMELINE_FIELDSETS,
    ExchangeBatchAdminMixin,
    batch_status_line,
)
from payouts.permissions import OPERATE_BATCH
from pgp_project.admin_helpers import DateRangeFilter, ReadOnlyAdminMixin, admin_link, html_table, money_column
from pgp_project.admin_scale import ScaleListMixin, choices_filter
from pgp_project.money import USDT_QUANTUM
from pgp_project.money_display import chain_reference, format_amount

from .conversion import CONVERSION_FLOW
from .models import BatchConversion

# The USDT a conversion receives is paid to the hot wallet on this chain (USDT ERC-20).
USDT_CHAIN = "eth"


@admin.register(BatchConversion)
class BatchConversionAdmin(ScaleListMixin, ExchangeBatchAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "status_shown",
        "row_count",
        "net_usd_shown",
        "total_eth_shown",
        "exchange_id",
        "expected_shown",
        "received_shown",
        "fee_shown",
        "created_at",
        "completed_at",
    )
    list_filter = (
        "status",
        choices_filter(
            "exchange_provider",
            "exchange provider",
            lambda: [(name, name) for name in provider_names()],
        ),
        ("created_at", DateRangeFilter),
    )
    ordering = ("-id",)  # newest first by the primary key: ids follow creation
    exact_search_fields = ("id", "exchange_id", "payin_address", "host_payment__tx_hash", "payout_tx_hash")
    search_help_text = (
        "Exact match: a conversion id, an exchange id, the exchange's deposit address, or a transaction hash "
        "(the ETH sent, or the USDT received)."
    )
    list_select_related = ("host_payment",)
    fieldsets = (
        ("Status", {"fields": ("status_shown", "exchange_status", "next_action_at", "deadline_at", "completed_at")}),
        (
            "Money",
            {
                "fields": (
                    "row_count",
                    "threshold_shown",
                    "gross_usd_shown",
                    "net_usd_shown",
                    "total_eth_shown",
                    "received_vs_expected",
                    "fee_shown",
                    "credit_shown",
                )
            },
        ),
        *EXCHANGE_AND_CHAIN_FIELDSETS,
        ("Rows and payments converted", {"fields": ("distribution",)}),
        *TIMELINE_FIELDSETS,
    )
    readonly_fields = (
        "status_shown",
        "threshold_shown",
        "gross_usd_shown",
        "net_usd_shown",
        "total_eth_shown",
        "received_vs_expected",
        "fee_shown",
        "credit_shown",
        "payin_address_shown",
        "exchange_from_shown",
        "expected_shown",
        "host_payment_summary",
        "payout_tx",
        "routing_saving",
        "quotes_table",
        "distribution",
        "history",
    )
    flow = CONVERSION_FLOW
    operate_permission = OPERATE_BATCH

    threshold_shown = money_column("threshold_usd", "USD", "micro-batch threshold then")
    gross_usd_shown = money_column("total_gross_usd", "USD", "gross")
    net_usd_shown = money_column("total_net_usd", "USD", "net")
    total_eth_shown = money_column("total_eth", "ETH", "ETH sent")
    exchange_from_shown = money_column("exchange_from_amount", "ETH", "exchange asked for")
    expected_shown = money_column("expected_amount", "USDT", "expected USDT")
    received_shown = money_column("received_usdt", "USDT", "received USDT")
    fee_shown = money_column("fee_usdt_total", "USDT", "platform fee")
    credit_shown = money_column("credit_usdt_total", "USDT", "client credit")

    @admin.display(description="received vs expected")
    def received_vs_expected(self, obj: BatchConversion) -> str:
        if obj.received_usdt is None or obj.expected_amount is None:
            return "-"
        expected = obj.expected_amount.quantize(USDT_QUANTUM)
        difference = obj.received_usdt - expected
        sign = "+" if difference >= 0 else "-"
        return (
            f"received {format_amount(obj.received_usdt, 'USDT')} of {format_amount(expected, 'USDT')} expected "
            f"({sign}{format_amount(abs(difference), 'USDT')})"
        )

    @admin.display(description="exchange's payout transaction (USDT to the hot wallet)")
    def payout_tx(self, obj: BatchConversion) -> SafeString | str:
        return chain_reference(USDT_CHAIN, "tx", obj.payout_tx_hash)

    @admin.display(description="distribution per row (ETH contributed, USDT received, fee, client credit)")
    def distribution(self, obj: BatchConversion) -> SafeString | str:
        return html_table(
            ("row", "payment", "client", "status", "net", "ETH", "USDT", "fee", "client credit", "payout"),
            (
                (
                    admin_link("payments_payoutaccumulation", row.pk, f"row #{row.pk}"),
                    admin_link("payments_payment", row.payment_id, f"payment #{row.payment.provider_payment_id}"),
                    row.client,
                    row.get_status_display(),
                    format_amount(row.net_usd, "USD"),
                    format_amount(row.source_amount, "ETH"),
                    format_amount(row.usdt_amount, "USDT"),
                    format_amount(row.fee_usdt, "USDT"),
                    format_amount(row.credit_usdt, "USDT"),
                    admin_link("payouts_payoutbatch", row.payout_batch_id, f"payout #{row.payout_batch_id}"),
                )
                for row in rows_of_conversion(obj.pk).select_related("payment")
            ),
            css_class="conversion-rows",
        )


def _conversion_steps(payment: Payment, row: PayoutAccumulation | None) -> Iterable[TraceStep]:
    """A payment's conversion (its accumulation row's), with the ETH sent and the USDT received."""
    if row is None or row.batch_conversion_id is None:
        return []
    conversion = BatchConversion.objects.select_related("host_payment").filter(pk=row.batch_conversion_id).first()
    if conversion is None:
        return []
    parts = []
    host_payment = conversion.host_payment
    if host_payment is not None and host_payment.tx_hash:
        parts.append(
            format_html(
                "ETH sent {} ({})",
                chain_reference(host_payment.chain, "tx", host_payment.tx_hash),
                admin_link("payouts_hostpayment", host_payment.pk, f"host payment #{host_payment.pk}"),
            )
        )
    if conversion.payout_tx_hash:
        parts.append(format_html("USDT received {}", chain_reference(USDT_CHAIN, "tx", conversion.payout_tx_hash)))
    amount = format_amount(row.source_amount, "ETH") + f" of {format_amount(conversion.total_eth, 'ETH')}"
    return [
        TraceStep(
            what="conversion",
            link=admin_link("batching_batchconversion", conversion.pk, conversion),
            status=batch_status_line(conversion),
            amount=amount,
            on_chain=format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts)) if parts else "-",
        )
    ]


register_payment_tracer(20, _conversion_steps)
