from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString

from integrations.assets import ASSETS, unit_symbol
from pgp_project.admin_helpers import (
    DateRangeFilter,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    TimelineEntry,
    admin_link,
    history_table,
    html_table,
    money_column,
    status_line,
)
from pgp_project.admin_scale import EXACT_COUNT_UP_TO, ScaleListMixin
from pgp_project.money_display import chain_reference, destination_reference, format_amount
from pgp_project.operations.two_person_admin import TwoPersonAdminMixin

from .late_payments import PartialPaymentNotAcceptable, accept_partial_payment
from .models import Client, Payment, PaymentEvent, PayoutAccumulation, RoutingStatus
from .money_controls import CHANGE_DESTINATION, CHANGE_FEES_AND_THRESHOLDS, deactivate_client, open_client
from .routing import reroute_held_payment
from .selectors import PAYMENT_SUBJECT, TOTAL_FIELDS, accumulation_totals, client_balance

TOTAL_UNITS = {"gross_usd": "USD", "fee_usd": "USD", "net_usd": "USD"}


# --- where a payment's money went: steps registered by the apps above this one ------------------


@dataclass(frozen=True)
class TraceStep:
    """One step of a payment's way onward (its accumulation row, its conversion, its payout):
    a link to the step's page, its status, its amount and its on-chain transactions."""

    what: str
    link: SafeString | str
    status: SafeString | str
    amount: str
    on_chain: SafeString | str = "-"


PaymentTracer = Callable[[Payment, PayoutAccumulation | None], Iterable[TraceStep]]
_TRACERS: list[tuple[int, PaymentTracer]] = []


def register_payment_tracer(order: int, tracer: PaymentTracer) -> None:
    """An app above this one (batching, payouts) adds the steps it owns to every payment's trace,
    so this app links onward without importing them. `order` places the steps (row 10,
    conversion 20, payout 30)."""
    _TRACERS.append((order, tracer))
    _TRACERS.sort(key=lambda entry: entry[0])


def _accumulation_step(payment: Payment, row: PayoutAccumulation | None) -> Iterable[TraceStep]:
    if row is None:
        return []
    amount = f"{format_amount(row.net_usd, 'USD')} net of {format_amount(row.gross_usd, 'USD')}"
    amount += f" ({format_amount(row.source_amount, unit_symbol(row.source_currency))})"
    if row.credit_usdt is not None:
        amount += f"; client credit {format_amount(row.credit_usdt, 'USDT')}"
    return [
        TraceStep(
            what="accumulation row",
            link=admin_link("payments_payoutaccumulation", row.pk, f"row #{row.pk}"),
            status=status_line(row.status, label=row.get_status_display(), reason=row.hold_reason),
            amount=amount,
        )
    ]


register_payment_tracer(10, _accumulation_step)


def payment_trace(payment: Payment) -> SafeString | str:
    row = PayoutAccumulation.objects.filter(payment=payment).first()
    steps = [step for _, tracer in _TRACERS for step in tracer(payment, row)]
    return html_table(
        ("step", "page", "status", "amount", "on chain"),
        ((step.what, step.link, step.status, step.amount, step.on_chain) for step in steps),
        empty="not routed onward (no accumulation row or payout yet)",
        css_class="payment-trace",
    )


@admin.register(Client)
class ClientAdmin(TwoPersonAdminMixin, admin.ModelAdmin):
    """A change of a client's wallet, network, currency, id, fee or threshold is only requested
    here (with its dedicated permission) and applies once a second staff member confirms it."""

    list_display = (
        "external_id",
        "name",
        "payout_strategy",
        "threshold_shown",
        "payout_currency",
        "payout_network",
        "wallet_shown",
        "fee_percent_override",
        "is_active",
    )
    list_filter = ("payout_strategy", "payout_currency", "is_active", ("created_at", DateRangeFilter))
    search_fields = ("external_id", "name", "wallet_address")
    readonly_fields: ClassVar[tuple[str, ...]] = (
        "balance_by_state",
        "wallet_shown",
        "created_by",
        "created_at",
        "updated_at",
        "pending_changes",
        "history",
    )

    threshold_shown = money_column("payout_threshold_usd", "USD", "payout threshold")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new client is set up by one person and starts inactive: payments for it are held
        # and nothing is paid to it until a second person confirms its activation (with the
        # wallet, strategy, threshold and fee it was created with). The creator sets where and
        # how much it is paid, so needs both request permissions.
        return (
            super().has_add_permission(request)
            and request.user.has_perm(CHANGE_DESTINATION)
            and request.user.has_perm(CHANGE_FEES_AND_THRESHOLDS)
        )

    def has_delete_permission(self, request: HttpRequest, obj: Client | None = None) -> bool:
        return False  # payments reference clients; deactivate instead

    def save_model(self, request: HttpRequest, obj: Client, form: Any, change: bool) -> None:
        if change:
            if "is_active" in form.changed_data and not obj.is_active:
                # Freezing is the safe direction: at once, by one person (reactivating is guarded).
                deactivate_client(obj.pk, user=request.user, reason=form.cleaned_data.get("change_reason", ""))
                form.changed_data.remove("is_active")
                self.message_user(request, f"Client {obj.external_id} is deactivated: its payments are held.")
            super().save_model(request, obj, form, change)
            return
        activation = open_client(obj, user=request.user, reason=form.cleaned_data.get("change_reason", ""))
        if activation is not None:
            self.message_user(
                request,
                f"Client {obj.external_id} is created inactive: its payments are held until a second staff member "
                f"confirms its activation (change #{activation.pk}).",
                messages.WARNING,
            )

    @admin.display(description="wallet (block explorer)")
    def wallet_shown(self, obj: Client) -> SafeString | str:
        return destination_reference(obj.payout_network or "", obj.wallet_address, obj.payout_extra_id)

    @admin.display(description="balance by state")
    def balance_by_state(self, obj: Client) -> str:
        if obj.pk is None:
            return "-"
        balance = client_balance(obj.pk)
        return (
            f"pending {format_amount(balance['pending_usd'], 'USD')} · "
            f"converted {format_amount(balance['converted_usdt'], 'USDT')} · "
            f"in payout {format_amount(balance['in_payout_usdt'], 'USDT')} · "
            f"paid out {format_amount(balance['paid_out_usdt'], 'USDT')}"
        )


class PaymentEventInline(ReadOnlyTabularInline):
    model = PaymentEvent
    fields = ("received_at", "reported_status", "outcome", "reason", "signature_valid", "remote_addr")
    readonly_fields = fields
    ordering = ("-received_at", "-id")
    show_change_link = True


class OutcomeCurrencyFilter(admin.SimpleListFilter):
    """The currencies NOWPayments pays out in, from the asset registry: the admin's default
    filter for a text column would read every row for its distinct values."""

    title = "outcome currency"
    parameter_name = "outcome_currency"

    OTHER = "other"

    @staticmethod
    def taken() -> list[str]:
        return sorted({asset.nowpayments_code for asset in ASSETS.values() if asset.nowpayments_code})

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*((code, f"{unit_symbol(code)} ({code})") for code in self.taken()), (self.OTHER, "other (held)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payment]) -> QuerySet[Payment]:
        value = self.value()
        if value == self.OTHER:
            return queryset.exclude(outcome_currency__in=self.taken())
        return queryset.filter(outcome_currency=value) if value else queryset


def _unit_of(currency_field: str) -> Callable[[object], str]:
    return lambda obj: unit_symbol(getattr(obj, currency_field))


@admin.register(Payment)
class PaymentAdmin(ScaleListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "provider_payment_id",
        "status_shown",
        "client",
        "price_shown",
        "outcome_shown",
        "created_at",
    )
    list_filter = ("status", "routing_status", OutcomeCurrencyFilter, ("created_at", DateRangeFilter))
    # Newest first by the primary key (ids follow arrival): an index every table has, where
    # created_at has only a BRIN one (cheap for the IPN's inserts, good for date ranges, no order).
    ordering = ("-id",)
    exact_search_fields = ("provider_payment_id", "order_id", "parent_provider_payment_id")
    search_help_text = "Exact match: a payment id (NOWPayments') or an order id, as written (PGP-<user>|<client>)."
    list_select_related = ("client",)
    fieldsets = (
        (None, {"fields": ("status_shown", "provider_payment_id", "client", "order_id", "order_description")}),
        (
            "Money",
            {"fields": ("price_shown", "pay_shown", "actually_paid_shown", "outcome_shown", "accepted_shown")},
        ),
        (
            "Repeated deposit: a further payment to another payment's address, credited by its value",
            {"fields": ("parent_provider_payment_id", "parent", "deposit_value_shown"), "classes": ("collapse",)},
        ),
        ("Onward: where this payment's money went", {"fields": ("trace",)}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Recorded", {"fields": ("user_id", "created_at", "updated_at", "raw_payload"), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "status_shown",
        "price_shown",
        "pay_shown",
        "actually_paid_shown",
        "outcome_shown",
        "accepted_shown",
        "deposit_value_shown",
        "trace",
        "timeline",
    )
    inlines = [PaymentEventInline]
    actions = ["reroute_held", "accept_partial"]

    price_shown = money_column("price_amount", _unit_of("price_currency"), "price")
    pay_shown = money_column("pay_amount", _unit_of("pay_currency"), "asked to pay")
    actually_paid_shown = money_column("actually_paid", _unit_of("pay_currency"), "actually paid")
    outcome_shown = money_column("outcome_amount", _unit_of("outcome_currency"), "outcome (what we received)")
    accepted_shown = money_column("accepted_price_amount", "USD", "accepted of a partial payment")
    deposit_value_shown = money_column("deposit_value_usd", "USD", "its value at the reference price")

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: Payment) -> SafeString:
        extra = f"routing: {obj.get_routing_status_display()}"
        if obj.reroute_requested_by_id is not None:
            extra += f"; release requested by {obj.reroute_requested_by}, awaiting a second staff member"
        return status_line(obj.status, reason=obj.hold_reason, extra=extra)

    @admin.display(description="accumulation row, conversion, payout and their transactions")
    def trace(self, obj: Payment) -> SafeString | str:
        return payment_trace(obj) if obj.pk else "-"

    @admin.display(description="timeline (every IPN and every operator action)")
    def timeline(self, obj: Payment) -> SafeString | str:
        ipns = [
            TimelineEntry(
                when=event.received_at,
                who="NOWPayments (IPN)",
                what=f"IPN {event.get_outcome_display()}",
                to_status=event.reported_status,
                why=event.reason,
            )
            for event in obj.events.all()
        ]
        return history_table(PAYMENT_SUBJECT, obj.pk, extra=ipns)

    @admin.action(description="Route held finished payments again", permissions=["reroute"])
    def reroute_held(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        routed = awaiting = 0
        for payment_id in queryset.filter(routing_status=RoutingStatus.HELD).values_list("id", flat=True):
            payment = reroute_held_payment(payment_id, actor=request.user)
            routed += payment.routing_status == RoutingStatus.ROUTED
            awaiting += payment.reroute_requested_by_id is not None
        self.message_user(
            request, f"{routed} payment(s) routed; the rest remain held with their reason.", messages.INFO
        )
        if awaiting:
            self.message_user(request, _awaiting_second_person_message(awaiting), messages.WARNING)

    @admin.action(description="Accept the amount actually paid (held partial payments)", permissions=["reroute"])
    def accept_partial(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        for payment_id in queryset.values_list("id", flat=True):
            try:
                payment = accept_partial_payment(payment_id, actor=request.user)
            except PartialPaymentNotAcceptable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            if payment.reroute_requested_by_id is not None:
                self.message_user(request, _awaiting_second_person_message(1), messages.WARNING)
                continue
            self.message_user(
                request,
                f"Payment #{payment.provider_payment_id}: {format_amount(payment.accepted_price_amount, 'USD')} "
                f"accepted, {payment.routing_status}.",
                messages.SUCCESS,
            )

    def has_reroute_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.resolve_held_payment")


def _awaiting_second_person_message(count: int) -> str:
    return (
        f"{count} payment(s) await a second staff member: they predate their client's confirmed activation, or "
        "you set that client up. Their timeline says who asked; another person must run the same action."
    )


@admin.register(PaymentEvent)
class PaymentEventAdmin(ScaleListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "provider_payment_id",
        "payment",
        "reported_status",
        "outcome",
        "reason",
        "signature_valid",
        "remote_addr",
    )
    list_filter = ("outcome", "signature_valid", ("received_at", DateRangeFilter))
    ordering = ("-received_at", "-id")  # received_at has its own index
    exact_search_fields = ("provider_payment_id",)
    search_help_text = "Exact match: a payment id (NOWPayments')."
    list_select_related = ("payment",)


@admin.register(PayoutAccumulation)
class PayoutAccumulationAdmin(ScaleListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "payment",
        "client",
        "status_shown",
        "gross_shown",
        "fee_shown",
        "net_shown",
        "source_shown",
        "credit_shown",
        "conversion_link",
        "payout_link",
        "created_at",
    )
    list_filter = ("status", "source_asset", "client", ("created_at", DateRangeFilter))
    ordering = ("-id",)  # as payments: newest first by the primary key
    exact_search_fields = (
        "id",
        "payment__provider_payment_id",
        "payment__order_id",
        "batch_conversion_id",
        "payout_batch_id",
    )
    search_help_text = "Exact match: a row id, a payment id (NOWPayments'), an order id, a conversion or payout id."
    list_select_related = ("payment", "client")
    fieldsets = (
        (None, {"fields": ("status_shown", "payment_link", "client", "conversion_link", "payout_link")}),
        ("USD at intake", {"fields": ("gross_shown", "fee_percent", "fee_shown", "net_shown", "source_shown")}),
        ("USDT from its conversion", {"fields": ("usdt_shown", "fee_usdt_shown", "credit_shown")}),
        ("Paid to", {"fields": ("wallet_shown", "payout_currency", "payout_network")}),
        ("Times", {"fields": ("created_at", "converted_at", "paid_out_at", "updated_at")}),
    )
    readonly_fields = (
        "status_shown",
        "payment_link",
        "conversion_link",
        "payout_link",
        "gross_shown",
        "fee_shown",
        "net_shown",
        "source_shown",
        "usdt_shown",
        "fee_usdt_shown",
        "credit_shown",
        "wallet_shown",
    )

    gross_shown = money_column("gross_usd", "USD", "gross")
    fee_shown = money_column("fee_usd", "USD", "fee")
    net_shown = money_column("net_usd", "USD", "net")
    source_shown = money_column("source_amount", _unit_of("source_currency"), "received as")
    usdt_shown = money_column("usdt_amount", "USDT", "USDT share")
    fee_usdt_shown = money_column("fee_usdt", "USDT", "fee USDT")
    credit_shown = money_column("credit_usdt", "USDT", "client credit")

    @admin.display(description="status", ordering="status")
    def status_shown(self, obj: PayoutAccumulation) -> SafeString:
        return status_line(obj.status, label=obj.get_status_display(), reason=obj.hold_reason)

    @admin.display(description="payment")
    def payment_link(self, obj: PayoutAccumulation) -> SafeString | str:
        return admin_link("payments_payment", obj.payment_id, obj.payment)

    # The batches belong to the apps above this one: linked by URL name, never imported.
    @admin.display(description="conversion", ordering="batch_conversion_id")
    def conversion_link(self, obj: PayoutAccumulation) -> SafeString | str:
        return admin_link("batching_batchconversion", obj.batch_conversion_id, f"conversion #{obj.batch_conversion_id}")

    @admin.display(description="payout", ordering="payout_batch_id")
    def payout_link(self, obj: PayoutAccumulation) -> SafeString | str:
        return admin_link("payouts_payoutbatch", obj.payout_batch_id, f"payout #{obj.payout_batch_id}")

    @admin.display(description="wallet")
    def wallet_shown(self, obj: PayoutAccumulation) -> SafeString | str:
        return chain_reference(obj.payout_network, "address", obj.wallet_address)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            if context["cl"].result_count > EXACT_COUNT_UP_TO:
                # Exact sums of millions of rows would cost the page seconds, and an estimate is
                # no money figure: totals wait until the filters narrow the list.
                context["totals_need_filter"] = EXACT_COUNT_UP_TO
                return response
            totals = accumulation_totals(context["cl"].queryset)
            context["totals"] = totals
            context["totals_shown"] = {
                name: format_amount(totals[name], TOTAL_UNITS.get(name, "USDT")) for name in TOTAL_FIELDS
            }
        return response
