"""Operator actions shared by the conversion and payout admins; each goes through the flow's
services and is safe to click twice."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from pgp_project.operations.scheduling import enqueue_after_commit

from . import exchange_flow
from .exchange_flow import OPEN_STATUSES, Flow
from .states import BatchStatus


class ExchangeBatchActions:
    """Mixin for a ModelAdmin of an exchange-funded batch: set `flow` and `operate_permission`."""

    flow: Flow
    operate_permission: str
    actions = ["redrive", "cancel_unfunded", "resume_funded"]

    @admin.action(description="Re-drive: run the next step for the current state", permissions=["operate"])
    def redrive(self, request: HttpRequest, queryset: QuerySet) -> None:
        open_ids = list(queryset.filter(status__in=OPEN_STATUSES).values_list("id", flat=True))
        for batch_id in open_ids:
            # The step itself is idempotent; a second click only repeats a harmless check.
            enqueue_after_commit(self.flow.advance_task, batch_id)
        self.message_user(request, f"Re-driving {len(open_ids)} open {self.flow.kind}(s).", messages.INFO)

    @admin.action(description="Cancel and release rows (only if nothing was sent)", permissions=["operate"])
    def cancel_unfunded(self, request: HttpRequest, queryset: QuerySet) -> None:
        reason = f"cancelled by {request.user} in the admin"
        cancelled = sum(
            exchange_flow.cancel_unfunded(self.flow, batch_id, reason=reason).status == BatchStatus.CANCELLED
            for batch_id in queryset.values_list("id", flat=True)
        )
        self.message_user(
            request, f"{cancelled} {self.flow.kind}(s) cancelled; any that may have sent funds were kept."
        )

    @admin.action(description="Resume a funded batch in review (host payment confirmed)", permissions=["operate"])
    def resume_funded(self, request: HttpRequest, queryset: QuerySet) -> None:
        note = f"by {request.user} in the admin"
        resumed = sum(
            exchange_flow.resume_funded(self.flow, batch_id, note=note).status == BatchStatus.EXCHANGING
            for batch_id in queryset.values_list("id", flat=True)
        )
        self.message_user(request, f"{resumed} {self.flow.kind}(s) resumed; others did not qualify and were kept.")

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(self.operate_permission)
