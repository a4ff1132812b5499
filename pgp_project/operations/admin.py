from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from pgp_project.admin_helpers import DateRangeFilter, ReadOnlyAdminMixin, money_column
from pgp_project.admin_scale import ScaleListMixin

from . import money_jobs_admin  # noqa: F401 - replaces django_celery_beat's admins (money jobs guarded)
from .access_admin import replace_access_admins
from .models import AuditEvent, JobHeartbeat, PendingChange, PendingChangeStatus, RuntimeSettings
from .pending_changes import CONFIRM_PERMISSION, ChangeNotPending, confirm_change, guarded_subject, reject_change
from .selectors import get_runtime_settings
from .two_person_admin import TwoPersonAdminMixin, changes_list, may_see_pending_changes


@admin.register(RuntimeSettings)
class RuntimeSettingsAdmin(TwoPersonAdminMixin, admin.ModelAdmin):
    """Every limit here is guarded: a change is requested (operations.change_runtime_limits) and
    applies once a second staff member confirms it (operations.confirm_change)."""

    list_display = (
        "__str__",
        "threshold_shown",
        "default_fee_percent",
        "approval_limit_shown",
        "updated_at",
    )
    readonly_fields = ("pending_changes", "history")

    threshold_shown = money_column("micro_batch_threshold_usd", "USD", "micro-batch threshold")
    approval_limit_shown = money_column("payout_approval_limit_usdt", "USDT", "payout approval limit")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        get_runtime_settings()  # the one row exists (with its defaults) before anyone looks for it
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the one row is created with its defaults on first use; changes go through confirmation

    def has_delete_permission(self, request: HttpRequest, obj: RuntimeSettings | None = None) -> bool:
        return False


@admin.register(PendingChange)
class PendingChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requested changes of money controls; a second staff member confirms or rejects them here."""

    list_display = (
        "id",
        "status",
        "subject",
        "old_to_new",
        "requested_by",
        "requested_at",
        "reason",
        "decided_by",
        "decided_at",
        "decision_note",
    )
    list_filter = ("status", "subject_type", ("requested_at", DateRangeFilter))
    date_hierarchy = "requested_at"
    list_select_related = ("requested_by", "decided_by")
    fields = list_display
    readonly_fields = list_display
    actions = ["confirm_changes", "reject_changes"]

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return super().has_view_permission(request, obj) or may_see_pending_changes(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or may_see_pending_changes(request)

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CONFIRM_PERMISSION)

    @admin.display(description="subject")
    def subject(self, obj: PendingChange) -> SafeString | str:
        label = f"{obj.subject_type} #{obj.subject_id}"
        try:
            opts = guarded_subject(obj.subject_type).model._meta
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.subject_id])
        except (LookupError, NoReverseMatch):
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="old -> new")
    def old_to_new(self, obj: PendingChange) -> SafeString:
        return changes_list(obj)

    @admin.action(description="Confirm the selected changes (you must not be their requester)", permissions=["confirm"])
    def confirm_changes(self, request: HttpRequest, queryset: QuerySet[PendingChange]) -> None:
        for change_id in queryset.values_list("id", flat=True):
            try:
                change = confirm_change(change_id, request.user)
            except (ChangeNotPending, PermissionDenied) as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            applied = change.status == PendingChangeStatus.APPLIED
            self.message_user(
                request,
                f"Change #{change.pk} {change.status}: {change.decision_note}",
                messages.SUCCESS if applied else messages.WARNING,
            )

    @admin.action(description="Reject the selected changes", permissions=["confirm"])
    def reject_changes(self, request: HttpRequest, queryset: QuerySet[PendingChange]) -> None:
        for change_id in queryset.values_list("id", flat=True):
            try:
                change = reject_change(change_id, request.user)
            except (ChangeNotPending, PermissionDenied) as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"Change #{change.pk} rejected.", messages.INFO)


@admin.register(JobHeartbeat)
class JobHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("job_name", "last_started_at", "last_finished_at", "run_count")


def audit_subject_types() -> list[str]:
    """The distinct subject types, read from the subject index by skipping from one type to
    the next (a handful of index probes, however many events there are)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE types(t) AS (
                (SELECT subject_type FROM operations_auditevent ORDER BY subject_type LIMIT 1)
                UNION ALL
                SELECT (SELECT subject_type FROM operations_auditevent WHERE subject_type > t
                        ORDER BY subject_type LIMIT 1)
                FROM types WHERE t IS NOT NULL
            )
            SELECT t FROM types WHERE t IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


class AuditSubjectTypeFilter(admin.SimpleListFilter):
    title = "subject type"
    parameter_name = "subject_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in audit_subject_types()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return queryset.filter(subject_type=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ScaleListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every transition of every state machine and every operator action, newest first."""

    list_display = ("created_at", "subject_type", "subject_id", "action", "from_status", "to_status", "who", "reason")
    # The admin's own filter of a text column reads every row for its distinct values: the
    # subject types come from the index instead; action and status are not offered as filters.
    list_filter = (AuditSubjectTypeFilter, ("created_at", DateRangeFilter))
    list_select_related = ("actor",)
    ordering = ("-id",)  # newest first: events are written in time order (created_at has a BRIN index)
    exact_search_fields = ("subject_id",)
    search_help_text = "Exact match: the id of the subject (a payout, a conversion, a host payment, a client...)."

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            # The subject index leads with the type: naming every type lets it serve the id.
            queryset = queryset.filter(subject_type__in=audit_subject_types())
        return queryset, duplicates

    @admin.display(description="who", ordering="actor")
    def who(self, obj: AuditEvent) -> str:
        return obj.actor_label


# Accounts, groups and TOTP devices: Django's and django-otp's admins with the access rules (and
# device keys never filterable).
replace_access_admins(admin.site)
