"""django_celery_beat's admin, with money jobs guarded (see `money_jobs`): its periodic task and
schedule admins are replaced by subclasses that

- turn a change of a money job's enabled flag, schedule, task, arguments or routing into a
  pending change a second staff member confirms (the two-person mixin);
- request instead of apply the bulk enable, disable and toggle of a money job;
- refuse deleting a money job's task row, and editing or deleting a schedule row one runs on;
- let only holders of `operations.change_money_jobs` give a periodic task a money job's task.

Other periodic tasks and schedules edit as before.
"""

from typing import Any

import django_celery_beat.admin as beat_admin  # registers the stock admins, which are replaced below
from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from .beat_schedule import money_job_tasks
from .money_jobs import (
    CHANGE_MONEY_JOBS,
    MONEY_JOB_SUBJECT,
    SCHEDULE_FIELDS,
    is_money_job,
    schedule_runs_a_money_job,
    set_enabled,
)
from .state_machine import record_event
from .two_person_admin import TwoPersonAdminMixin, TwoPersonModelForm

MONEY_JOB_NOTE = (
    "A money job: disabling it, or changing its schedule, task, arguments or routing, is requested by a "
    "staff member with operations.change_money_jobs and applies once a second staff member confirms it "
    "under Operations -> Pending changes. It cannot be deleted."
)


class RegisteredTaskForm(beat_admin.PeriodicTaskForm):
    def clean(self) -> dict[str, Any]:
        if "task" not in self.fields:  # read-only: the stock clean still reads it
            self.cleaned_data.setdefault("task", self.instance.task)
        cleaned = super().clean()
        # The stock form copies the "registered task" choice into `task` without `task` counting as
        # changed; count it, so that a money job's new task is requested like any guarded field.
        retargeted = self.instance.pk is not None and cleaned.get("task") != self.instance.task
        if retargeted and "task" in self.fields and "task" not in self.changed_data:
            self.changed_data.append("task")
        return cleaned


class PeriodicTaskForm(TwoPersonModelForm, RegisteredTaskForm):
    may_run_money_jobs = False  # set per request by PeriodicTaskAdmin.get_form

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        task = cleaned.get("task")
        new_task = self.instance.pk is None or task != self.instance.task
        if new_task and task in money_job_tasks() and not self.may_run_money_jobs:
            self.add_error("task", f"{task} is a money job: scheduling it needs the permission {CHANGE_MONEY_JOBS}.")
        if self.instance.pk is not None and is_money_job(self.instance):
            cleaned["change_reason"] = _with_schedule_names(self, cleaned)
        return cleaned


def _with_schedule_names(form: forms.ModelForm, cleaned: dict[str, Any]) -> str:
    """The requester's reason, followed by what a changed schedule means: a pending change shows
    schedule rows by id, and the second person confirms what they read."""
    reason = str(cleaned.get("change_reason") or "")
    moved = [
        f"{name}: {getattr(form.instance, name) or '-'} -> {cleaned.get(name) or '-'}"
        for name in SCHEDULE_FIELDS.values()
        if name in form.changed_data
    ]
    if not moved:
        return reason
    return "; ".join([*([reason] if reason else []), "schedule " + ", ".join(moved)])


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(TwoPersonAdminMixin, beat_admin.PeriodicTaskAdmin):
    form = PeriodicTaskForm
    list_display = ("name", "enabled", "money_job", "scheduler", "interval", "start_time", "last_run_at", "one_off")
    readonly_fields = (*beat_admin.PeriodicTaskAdmin.readonly_fields, "pending_changes", "history")

    @admin.display(description="money job", boolean=True)
    def money_job(self, obj: PeriodicTask) -> bool:
        return is_money_job(obj)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.may_run_money_jobs = request.user.has_perm(CHANGE_MONEY_JOBS)  # a class made for this request
        return form

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = [(title, dict(options)) for title, options in super().get_fieldsets(request, obj)]
        if obj is None or not is_money_job(obj):
            return fieldsets
        may_request = request.user.has_perm(CHANGE_MONEY_JOBS)
        title, first = fieldsets[0]
        # Without the permission the task is read-only: its "registered task" picker goes too.
        names = [name for name in first["fields"] if may_request or name != "regtask"]
        fieldsets[0] = (title, {**first, "fields": (*names, *(["change_reason"] if may_request else []))})
        note = ("Money job: changes need a second person", {"description": MONEY_JOB_NOTE, "fields": ()})
        panels = (None, {"fields": ("pending_changes", "history")})
        return [note, *fieldsets, panels]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # A task pointed at a money job's task becomes one (a copy): audited as created, like an added one.
        becomes_money_job = change and is_money_job(obj) and not is_money_job(type(obj).objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)
        if becomes_money_job:
            record_event(
                MONEY_JOB_SUBJECT,
                obj.pk,
                action="created",
                from_status="",
                to_status="",
                actor=request.user,
                reason=f"made a money job in the admin by {request.user}: task -> {obj.task!r}",
            )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Also what the bulk delete and a schedule's cascading delete ask for each row.
        if obj is not None and is_money_job(obj):
            return False
        return bool(super().has_delete_permission(request, obj))

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[PeriodicTask], enabled: bool | None) -> None:
        verb = {True: "enable", False: "disable", None: "toggle"}[enabled]
        outcome = set_enabled(
            queryset.values_list("pk", flat=True), enabled, user=request.user, reason=f"bulk action: {verb}"
        )
        if outcome.changed:
            self.message_user(request, f"{verb.capitalize()}d: {', '.join(outcome.changed)}.", messages.SUCCESS)
        for change in outcome.requested:
            self.message_user(
                request,
                f"Change #{change.pk} ({verb} a money job) is awaiting confirmation by a second staff member; "
                "it takes effect only once confirmed.",
                messages.WARNING,
            )
        if outcome.refused:
            self.message_user(
                request,
                f"Not changed: {', '.join(outcome.refused)} (money jobs: requesting this needs {CHANGE_MONEY_JOBS}).",
                messages.ERROR,
            )

    @admin.action(description="Enable selected tasks (a money job: request it)", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected tasks (a money job: request it)", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, False)

    @admin.action(description="Toggle activity of selected tasks (a money job: request it)", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, None)

    @admin.action(description="Run selected tasks once now", permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        # One more run changes no schedule, and every job is safe to run twice.
        super().run_tasks(request, queryset)


class MoneyScheduleGuard:
    """A schedule row a money job runs on is read-only and kept: editing it would re-time the
    job by one person. A money job is re-timed by a guarded change of its own schedule field."""

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if obj is not None and schedule_runs_a_money_job(obj):
            return False
        return bool(super().has_change_permission(request, obj))  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if obj is not None and schedule_runs_a_money_job(obj):
            return False
        return bool(super().has_delete_permission(request, obj))  # type: ignore[misc]

    def render_change_form(self, request: HttpRequest, context: Any, *args: Any, obj: Any = None, **kwargs: Any) -> Any:
        if obj is not None and schedule_runs_a_money_job(obj):
            self.message_user(  # type: ignore[attr-defined]
                request,
                "A money job runs on this schedule (or a pending change would make it), so it cannot be changed "
                "or deleted here. To re-time the job, request a change of its schedule on the periodic task.",
                messages.WARNING,
            )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)  # type: ignore[misc]


for schedule_model, stock_admin in (
    (IntervalSchedule, beat_admin.IntervalScheduleAdmin),
    (CrontabSchedule, beat_admin.CrontabScheduleAdmin),
    (SolarSchedule, beat_admin.SolarScheduleAdmin),
    (ClockedSchedule, beat_admin.ClockedScheduleAdmin),
):
    admin.site.unregister(schedule_model)
    admin.site.register(schedule_model, type(stock_admin.__name__, (MoneyScheduleGuard, stock_admin), {}))
