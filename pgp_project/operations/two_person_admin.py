"""The admin side of the two-person rule (see `pending_changes`): a ModelAdmin of a model with
guarded fields never writes those fields on save. A changed guarded field becomes a pending
change that a second staff member confirms; the other fields save as usual. A guarded field the
user may not request a change of is read-only."""

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from pgp_project.admin_helpers import AdminExtrasMedia, history_table, html_table
from pgp_project.money_display import format_time

from .models import PendingChange, PendingChangeStatus
from .pending_changes import GuardedModel, as_text, describe, guarded_model, request_change, request_permissions
from .state_machine import record_event


class TwoPersonModelForm(forms.ModelForm):
    change_reason = forms.CharField(
        required=False,
        max_length=1000,
        label="reason for a money-control change",
        help_text="Shown to the second staff member who confirms a change of a guarded field.",
    )

    def clean(self) -> dict[str, Any]:
        """The fields saved now (the unguarded ones) must be valid on their own, without the
        guarded changes that wait for confirmation."""
        cleaned = super().clean() or {}
        guarded = guarded_model(self._meta.model)
        if guarded is None or self.instance.pk is None:
            return cleaned
        held = [name for name in self.changed_data if name in guarded.fields_of(self.instance)]
        if not held:
            return cleaned
        candidate = copy.copy(self.instance)  # still the stored row: the form writes it after clean()
        for name in self.changed_data:
            if name not in held and name in cleaned and _is_model_field(candidate, name):
                setattr(candidate, name, cleaned[name])
        try:
            candidate.full_clean()
        except ValidationError as exc:
            raise ValidationError(
                f"{', '.join(held)} will only change once a second staff member confirms it, and the other "
                f"changes are not valid without it ({'; '.join(exc.messages)}). Save the guarded change alone "
                "first, then the rest once it is confirmed."
            ) from exc
        return cleaned


def _is_model_field(obj: models.Model, name: str) -> bool:
    return any(field.name == name for field in obj._meta.concrete_fields)


class TwoPersonAdminMixin(AdminExtrasMedia):
    """For a ModelAdmin of a model registered with `register_guarded_fields`. Add
    "pending_changes" and "history" to its readonly_fields to show both panels."""

    form: Any = TwoPersonModelForm
    model: type[models.Model]

    @property
    def guarded(self) -> GuardedModel:
        guarded = guarded_model(self.model)
        assert guarded is not None, f"{self.model.__name__} has no guarded fields registered"
        return guarded

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        not_allowed = [
            name
            for name, permission in self.guarded.fields_of(obj).items()
            if not request.user.has_perm(permission) and name not in readonly
        ]
        return [*readonly, *not_allowed]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            if not self.guarded.guards(obj):
                return
            created_with = {name: {"old": None, "new": as_text(getattr(obj, name))} for name in self.guarded.fields}
            record_event(
                self.guarded.subject,
                obj.pk,
                action="created",
                from_status="",
                to_status="",
                actor=request.user,
                reason=f"created in the admin by {request.user}: {describe(created_with)}",
            )
            return
        stored = type(obj)._default_manager.get(pk=obj.pk)
        guarded_fields = self.guarded.fields_of(stored)  # the stored row decides, not the edited one
        held = {name: getattr(obj, name) for name in form.changed_data if name in guarded_fields}
        for name in held:
            setattr(obj, name, getattr(stored, name))
        # Never write a guarded field here, not even its stored value: a confirmation applied
        # meanwhile must not be overwritten by an unrelated edit of the same row.
        obj.save(
            update_fields=[
                field.name
                for field in obj._meta.concrete_fields
                if not field.primary_key and field.name not in guarded_fields
            ]
        )
        if held:
            pending = request_change(
                type(obj), obj.pk, held, user=request.user, reason=form.cleaned_data.get("change_reason", "")
            )
            if pending is not None:
                self.message_user(  # type: ignore[attr-defined]
                    request,
                    f"Change #{pending.pk} of {', '.join(pending.changes)} is awaiting confirmation by a second "
                    "staff member; it takes effect only once confirmed.",
                    messages.WARNING,
                )

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        """Django's own log says which fields were saved: not the guarded ones, which only were requested."""
        message = super().construct_change_message(request, form, formsets, add)  # type: ignore[misc]
        if add:
            return message
        guarded_fields = self.guarded.fields_of(form.instance)
        held = {str(form.fields[name].label or name) for name in guarded_fields if name in form.fields}
        for entry in message:
            if "changed" in entry:
                entry["changed"]["fields"] = [name for name in entry["changed"]["fields"] if name not in held]
        return [entry for entry in message if "changed" not in entry or entry["changed"]["fields"]]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        if "change_reason" in fields and not any(request.user.has_perm(p) for p in self.guarded.fields.values()):
            fields.remove("change_reason")
        return fields

    @admin.display(description="changes awaiting confirmation by a second staff member")
    def pending_changes(self, obj: models.Model) -> SafeString | str:
        return pending_changes_table(self.guarded.subject, obj.pk)

    @admin.display(description="timeline (every requested, confirmed and rejected money-control change)")
    def history(self, obj: models.Model) -> SafeString | str:
        return history_table(self.guarded.subject, obj.pk)


def pending_changes_table(subject: str, pk: int | None) -> SafeString | str:
    """The changes of one subject that wait for a second staff member, linked to each."""
    if pk is None:
        return "-"
    pending = PendingChange.objects.filter(
        subject_type=subject, subject_id=pk, status=PendingChangeStatus.PENDING
    ).select_related("requested_by")
    return html_table(
        ("change", "requested by", "at", "old -> new", "reason"),
        (
            (
                format_html(
                    '<a href="{}">#{}</a>', reverse("admin:operations_pendingchange_change", args=[c.pk]), c.pk
                ),
                c.requested_by,
                format_time(c.requested_at),
                changes_list(c),
                c.reason,
            )
            for c in pending
        ),
        empty="none",
    )


def changes_list(change: PendingChange) -> SafeString:
    return format_html_join(
        "",
        "<div><code>{}</code>: {} &rarr; {}</div>",
        ((name, values["old"], values["new"]) for name, values in change.changes.items()),
    )


def may_see_pending_changes(request: HttpRequest) -> bool:
    user = request.user
    return user.has_perm("operations.confirm_change") or any(user.has_perm(p) for p in request_permissions())
