from typing import ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline
from pgp_project.operations.two_person_admin import TwoPersonAdminMixin

from .late_payments import PartialPaymentNotAcceptable, accept_partial_payment
from .models import Client, Payment, PaymentEvent, PayoutAccumulation, RoutingStatus
from .money_controls import CHANGE_DESTINATION, CHANGE_FEES_AND_THRESHOLDS
from .routing import reroute_held_payment
from .selectors import accumulation_totals, client_balance


@admin.register(Client)
class ClientAdmin(TwoPersonAdminMixin, admin.ModelAdmin):
    """A change of a client's wallet, network, currency, id, fee or threshold is only requested
    here (with its dedicated permission) and applies once a second staff member confirms it."""

    list_display = (
        "external_id",
        "name",
        "payout_strategy",
        "payout_threshold_usd",
        "payout_currency",
        "payout_network",
        "fee_percent_override",
        "is_active",
    )
    list_filter = ("payout_strategy", "payout_currency", "is_active")
    search_fields = ("external_id", "name", "wallet_address")
    readonly_fields: ClassVar[tuple[str, ...]] = (
        "balance_by_state",
        "created_at",
        "updated_at",
        "pending_changes",
        "history",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new client is created by one person: it has no payments and no balance yet, so no
        # money follows its wallet until payments arrive, and its creation (with every guarded
        # value) is in its history. The creator sets where and how much it is paid, so needs
        # both request permissions. Every later change of those fields needs a second person.
        return (
            super().has_add_permission(request)
            and request.user.has_perm(CHANGE_DESTINATION)
            and request.user.has_perm(CHANGE_FEES_AND_THRESHOLDS)
        )

    def has_delete_permission(self, request: HttpRequest, obj: Client | None = None) -> bool:
        return False  # payments reference clients; deactivate instead

    @admin.display(description="balance by state")
    def balance_by_state(self, obj: Client) -> str:
        if obj.pk is None:
            return "-"
        balance = client_balance(obj.pk)
        return (
            f"pending {balance['pending_usd']} USD · converted {balance['converted_usdt']} USDT · "
            f"in payout {balance['in_payout_usdt']} USDT · paid out {balance['paid_out_usdt']} USDT"
        )


class PaymentEventInline(ReadOnlyTabularInline):
    model = PaymentEvent
    fields = ("received_at", "reported_status", "outcome", "reason", "signature_valid", "remote_addr")
    readonly_fields = fields
    ordering = ("-received_at", "-id")
    show_change_link = True


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "provider_payment_id",
        "status",
        "routing_status",
        "client",
        "price_amount",
        "price_currency",
        "outcome_amount",
        "outcome_currency",
        "created_at",
    )
    list_filter = ("status", "routing_status", "outcome_currency")
    search_fields = ("=provider_payment_id", "order_id")
    list_select_related = ("client",)
    inlines = [PaymentEventInline]
    actions = ["reroute_held", "accept_partial"]

    @admin.action(description="Route held finished payments again", permissions=["reroute"])
    def reroute_held(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        routed = 0
        for payment_id in queryset.filter(routing_status=RoutingStatus.HELD).values_list("id", flat=True):
            payment = reroute_held_payment(payment_id, actor=request.user)
            routed += payment.routing_status == RoutingStatus.ROUTED
        self.message_user(
            request, f"{routed} payment(s) routed; the rest remain held with their reason.", messages.INFO
        )

    @admin.action(description="Accept the amount actually paid (held partial payments)", permissions=["reroute"])
    def accept_partial(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        for payment_id in queryset.values_list("id", flat=True):
            try:
                payment = accept_partial_payment(payment_id, actor=request.user)
            except PartialPaymentNotAcceptable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            self.message_user(
                request,
                f"Payment #{payment.provider_payment_id}: {payment.accepted_price_amount} USD accepted, "
                f"{payment.routing_status}.",
                messages.SUCCESS,
            )

    def has_reroute_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.resolve_held_payment")


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "provider_payment_id",
        "reported_status",
        "outcome",
        "signature_valid",
        "remote_addr",
    )
    list_filter = ("outcome", "signature_valid")
    search_fields = ("=provider_payment_id",)


@admin.register(PayoutAccumulation)
class PayoutAccumulationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "payment",
        "client",
        "status",
        "gross_usd",
        "fee_usd",
        "net_usd",
        "source_amount",
        "source_currency",
        "credit_usdt",
        "batch_conversion_id",
        "payout_batch_id",
        "created_at",
    )
    list_filter = ("status", "source_asset", "client")
    search_fields = ("=payment__provider_payment_id",)
    list_select_related = ("payment", "client")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["totals"] = accumulation_totals(context["cl"].queryset)
        return response
