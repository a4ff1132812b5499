"""The webhooks in the admin: endpoints (staff create, edit, disable and enable them; the signing
secret is shown once, on creation), the delivery log per endpoint and per event with a manual
resend (its own permission), and the outbox's events, read only."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from pgp_project.admin_helpers import ReadOnlyAdminMixin, ReadOnlyTabularInline
from pgp_project.money_display import format_time
from pgp_project.outbox.models import OutboxEvent

from . import services
from .models import ALL_EVENTS, EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint

RESEND_PERMISSION = "webhooks.resend_webhook"


class EndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(ALL_EVENTS, "* (every event)")] + [(name, name) for name in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "client"]

    def clean_url(self) -> str:
        return services.clean_url(self.cleaned_data["url"])

    def clean_event_types(self) -> list[str]:
        return services.clean_event_types(self.cleaned_data["event_types"])


def _deliveries_link(label: str, **filters: object) -> str:
    query = "&".join(f"{key}={value}" for key, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', reverse("admin:webhooks_webhookdelivery_changelist"), query, label)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["id", "url", "enabled", "types", "client", "failing", "delivery_log", "created_at"]
    list_filter = ["enabled"]
    list_select_related = ["client"]
    search_fields = ["url", "description"]
    readonly_fields = [
        "enabled",
        "failing_since",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_by",
    ]
    actions = ["disable", "enable"]

    @admin.display(description="events")
    def types(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description="failing")
    def failing(self, endpoint: WebhookEndpoint) -> str:
        if endpoint.failing_since is None:
            return "-"
        return f"since {format_time(endpoint.failing_since)} ({endpoint.consecutive_failures} in a row)"

    @admin.display(description="deliveries")
    def delivery_log(self, endpoint: WebhookEndpoint) -> str:
        return _deliveries_link("log", endpoint__id__exact=endpoint.pk)

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if change:
            services.update_endpoint(
                obj.pk, url=obj.url, event_types=obj.event_types, description=obj.description, actor=request.user
            )
            return
        created = services.create_endpoint(
            url=obj.url,
            event_types=obj.event_types,
            client=obj.client,
            description=obj.description,
            created_by=request.user,
        )
        obj.pk = created.endpoint.pk
        # Shown once: the receiver's owner keeps it; it is never displayed again.
        messages.warning(request, f"Signing secret of endpoint #{obj.pk} (shown once, copy it now): {created.secret}")

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> Any:
        # Whose events an endpoint gets is fixed at creation: create another for another client.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "client"] if obj is not None else fields

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # its deliveries are the log; disable it instead

    @admin.action(description="Disable the selected endpoints", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        done = sum(
            services.disable_endpoint(pk, reason="disabled by staff", actor=request.user)
            for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{done} endpoint(s) disabled")

    @admin.action(description="Enable the selected endpoints (pending deliveries resume)", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        done = sum(services.enable_endpoint(pk, actor=request.user) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} endpoint(s) enabled")


class AttemptInline(ReadOnlyTabularInline):
    model = WebhookAttempt
    fields = ("attempted_at", "status_code", "error", "duration_ms", "response_excerpt")
    readonly_fields = fields
    show_change_link = False
    ordering = ["-id"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "event_link",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status"]
    list_select_related = ["event", "endpoint"]
    search_fields = ["=event__event_id"]
    # Admin filters by URL: ?endpoint__id__exact= and ?event__id__exact= (the links on endpoints and events).
    show_full_result_count = False
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = (
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in ("endpoint__id__exact", "event__id__exact") or super().lookup_allowed(lookup, value, request)

    @admin.display(description="event")
    def event_link(self, delivery: WebhookDelivery) -> str:
        return delivery.event.event_id

    @admin.display(description="type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.action(description="Resend the selected deliveries now", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for pk in ids:
            services.resend(pk, actor=request.user)
        self.message_user(request, f"{len(ids)} deliver(y/ies) queued to be sent again")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESEND_PERMISSION)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["event_id", "type", "subject", "sequence", "client_id", "created_at", "dispatched_at", "deliveries"]
    list_filter = ["type"]
    search_fields = ["=event_id", "=subject_id"]
    show_full_result_count = False
    fields = (
        "event_id",
        "type",
        "subject_type",
        "subject_id",
        "sequence",
        "client_id",
        "payload",
        "created_at",
        "dispatched_at",
    )
    readonly_fields = fields

    @admin.display(description="subject")
    def subject(self, event: OutboxEvent) -> str:
        return f"{event.subject_type} #{event.subject_id}"

    @admin.display(description="deliveries")
    def deliveries(self, event: OutboxEvent) -> str:
        return _deliveries_link("log", event__id__exact=event.pk)
