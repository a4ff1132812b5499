from django.contrib import admin
from django.http import HttpRequest

from pgp_project.admin_helpers import ReadOnlyAdminMixin

from .models import AuditEvent, JobHeartbeat, RuntimeSettings


@admin.register(RuntimeSettings)
class RuntimeSettingsAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "micro_batch_threshold_usd",
        "default_fee_percent",
        "confirmations_required",
        "payout_approval_limit_usdt",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RuntimeSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: RuntimeSettings | None = None) -> bool:
        return False


@admin.register(JobHeartbeat)
class JobHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("job_name", "last_started_at", "last_finished_at", "run_count")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every transition of every state machine and every operator action, newest first."""

    list_display = ("created_at", "subject_type", "subject_id", "action", "from_status", "to_status", "actor", "reason")
    list_filter = ("subject_type", "action", "to_status")
    search_fields = ("=subject_id", "reason")
    list_select_related = ("actor",)
    ordering = ("-created_at", "-id")
