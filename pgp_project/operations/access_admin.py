"""The admin of accounts, groups and TOTP devices: Django's and django-otp's own pages, with the
rules of `access_control` (no self-administration, no granting what one does not hold, money
grants through a second person, every change audited). The pages look as they always did, plus
the changes awaiting a second person and the account's or group's history."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.safestring import SafeString
from django_otp.plugins.otp_totp.models import TOTPDevice

from pgp_project.admin_helpers import AdminExtrasMedia, history_table

from .access_control import (
    FLAGS,
    GROUP_SUBJECT,
    USER_SUBJECT,
    Access,
    AccessOutcome,
    account_refusal,
    change_group_permissions,
    change_user_access,
    check_group_change,
    check_group_deletion,
    check_user_change,
    check_user_deletion,
    device_refusal,
    enrolment_refusal,
    password_refusal,
    permission_keys,
    read_access,
    record_account_created,
    record_device_event,
    record_group_renamed,
    record_password_set,
)
from .totp_admin import SecretKeepingTOTPDeviceAdmin
from .two_person_admin import pending_changes_table

ACCESS_FIELDS = (*FLAGS, "groups", "user_permissions")
REASON_FIELD = forms.CharField(
    required=False,
    max_length=1000,
    label="reason for a money-control change",
    help_text="Shown to the second staff member who confirms a grant of money permissions or superuser status.",
)


# What an enrolled device keeps: only its name and whether it is confirmed may change.
ENROLLED_DEVICE_FIELDS = (
    "user", "key", "step", "t0", "digits", "tolerance", "drift", "last_t",
    "throttling_failure_timestamp", "throttling_failure_count",
)  # fmt: skip


def lock_account(user: Any) -> None:
    """The account's row lock, which requesting and confirming an access change of it take too:
    a credential set here and its audit event land together, before such a change (which then
    records who set it) or after it (and find it pending), never in between."""
    list(type(user)._default_manager.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def _wanted_access(form: forms.ModelForm, current: Access) -> Access:
    """The access the form asks for; fields the form does not carry keep their stored values."""
    data = form.cleaned_data
    return Access(
        is_active=data.get("is_active", current.is_active),
        is_staff=data.get("is_staff", current.is_staff),
        is_superuser=data.get("is_superuser", current.is_superuser),
        permissions=permission_keys(data["user_permissions"]) if "user_permissions" in data else current.permissions,
        groups=frozenset(group.name for group in data["groups"]) if "groups" in data else current.groups,
    )


def _report(admin_page: Any, request: HttpRequest, outcome: AccessOutcome) -> None:
    if outcome.pending is not None:
        changed = [name for name, values in outcome.pending.changes.items() if values["old"] != values["new"]]
        admin_page.message_user(
            request,
            f"Change #{outcome.pending.pk} ({', '.join(changed)}) grants money permissions: it is "
            "awaiting confirmation by a second staff member and takes effect only once confirmed.",
            messages.WARNING,
        )


class AccessPanelsMixin(AdminExtrasMedia):
    subject: str

    @admin.display(description="changes awaiting confirmation by a second staff member")
    def pending_access_changes(self, obj: Model) -> SafeString | str:
        return pending_changes_table(self.subject, obj.pk)

    @admin.display(description="timeline (every change of access, requested, confirmed or applied)")
    def access_history(self, obj: Model) -> SafeString | str:
        return history_table(self.subject, obj.pk)


class AccessUserChangeForm(UserChangeForm):
    change_reason = REASON_FIELD
    actor: Any = None  # set per request by the admin

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            wanted = _wanted_access(self, read_access(self.instance))
            check_user_change(self.actor, self.instance, wanted)  # ValidationError: shown on the form
        return cleaned


class AccessUserAdmin(AccessPanelsMixin, UserAdmin):
    """Django's user admin; the access fields never save directly: `change_user_access` applies
    or requests them. Your own account's access fields are read-only."""

    subject = USER_SUBJECT
    form = AccessUserChangeForm
    fieldsets = (
        *(UserAdmin.fieldsets or ()),
        ("Money controls", {"fields": ("change_reason", "pending_access_changes", "access_history")}),
    )
    readonly_fields = ("pending_access_changes", "access_history")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})  # the form checks who acts

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.pk == request.user.pk:
            readonly += [name for name in ACCESS_FIELDS if name not in readonly]
        return readonly

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            # A new account is made with a username and a password only: no permission, group or
            # staff status (the add form has none); every first grant goes through the rules.
            obj.is_staff = obj.is_superuser = False
            super().save_model(request, obj, form, change)
            record_account_created(request.user, obj)
            return
        stored = type(obj)._default_manager.get(pk=obj.pk)
        for flag in FLAGS:
            setattr(obj, flag, getattr(stored, flag))  # written by change_user_access, or not at all
        # Never the flags (change_user_access writes them) nor the password (its own page sets it).
        unwritten = {*FLAGS, "password", "last_login"}
        obj.save(
            update_fields=[f.name for f in obj._meta.concrete_fields if not f.primary_key and f.name not in unwritten]
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if not change:
            return  # the add form has no access fields
        user = form.instance
        try:
            outcome = change_user_access(
                request.user,
                user.pk,
                _wanted_access(form, read_access(user)),
                reason=form.cleaned_data.get("change_reason", ""),
            )
        except ValidationError as exc:  # only when something changed since the form's own check
            raise PermissionDenied("; ".join(exc.messages)) from exc
        _report(self, request, outcome)

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> Any:
        """Django's log says which fields were saved: not the access fields, which
        `change_user_access` applies or requests (and records in the account's history)."""
        message = super().construct_change_message(request, form, formsets, add)
        access = {str(form.fields[name].label) for name in ACCESS_FIELDS if name in form.fields}
        for entry in message:
            if "changed" in entry:
                entry["changed"]["fields"] = [name for name in entry["changed"]["fields"] if name not in access]
        return [entry for entry in message if "changed" not in entry or entry["changed"]["fields"]]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A superuser's account, or one holding what you do not: shown, not editable.
        return super().has_change_permission(request, obj) and (
            obj is None or account_refusal(request.user, obj) is None
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (
            obj is None or account_refusal(request.user, obj) is None
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        check_user_deletion(request.user, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for user in queryset:
            check_user_deletion(request.user, user)
        super().delete_queryset(request, queryset)

    @transaction.atomic
    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        user = self.get_object(request, id)
        if user is None:
            return super().user_change_password(request, id, form_url)  # Django's own 404
        if request.method == "POST":
            lock_account(user)
        refusal = password_refusal(request.user, user)
        if refusal is not None:
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            record_password_set(request.user, user)
        return response


class AccessGroupForm(forms.ModelForm):
    change_reason = REASON_FIELD
    actor: Any = None

    class Meta:
        model = Group
        fields = ("name", "permissions")

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if "," in name:  # group names are listed comma-separated in changes and the audit trail
            raise ValidationError("A group name cannot contain a comma.")
        return name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors and "permissions" in cleaned:
            check_group_change(self.actor, self.instance, permission_keys(cleaned["permissions"]))
        return cleaned


class AccessGroupAdmin(AccessPanelsMixin, GroupAdmin):
    subject = GROUP_SUBJECT
    form = AccessGroupForm
    fields = ("name", "permissions", "change_reason", "pending_access_changes", "access_history")
    readonly_fields = ("pending_access_changes", "access_history")

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.user_set.filter(pk=request.user.pk).exists():
            readonly.append("permissions")  # a member's group is their own permissions
        return readonly

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        renamed_from = form.initial.get("name") if change and "name" in form.changed_data else None
        super().save_model(request, obj, form, change)
        if renamed_from is not None:
            record_group_renamed(request.user, obj, renamed_from)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if "permissions" not in form.cleaned_data:
            return
        try:
            outcome = change_group_permissions(
                request.user,
                form.instance.pk,
                permission_keys(form.cleaned_data["permissions"]),
                reason=form.cleaned_data.get("change_reason", ""),
            )
        except ValidationError as exc:
            raise PermissionDenied("; ".join(exc.messages)) from exc
        _report(self, request, outcome)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        check_group_deletion(request.user, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for group in queryset:
            check_group_deletion(request.user, group)
        super().delete_queryset(request, queryset)


class AccessTOTPDeviceAdmin(SecretKeepingTOTPDeviceAdmin):
    """django-otp's device admin, where nobody manages a device of their own account, a device
    never moves to another account, and every enrolment, change and removal is in its owner's
    history."""

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        actor = request.user

        class DeviceForm(form):  # type: ignore[valid-type,misc]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean() or {}
                owner = cleaned.get("user") or getattr(self.instance, "user", None)
                adding = self.instance.pk is None
                refusal = enrolment_refusal(actor, owner) if adding else device_refusal(actor, owner)
                if refusal:
                    raise ValidationError(refusal)
                return cleaned

        return DeviceForm

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A device stays with its owner, and its secret and settings as enrolled: a wide
            # tolerance or drift, a changed step or cleared throttling would let a guess through.
            readonly += [name for name in ENROLLED_DEVICE_FIELDS if name not in readonly]
        return readonly

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        # An enrolled device's secret is neither shown nor rewritten here.
        return [
            (title, {**options, "fields": [name for name in options["fields"] if name != "key"]})
            for title, options in fieldsets
        ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and (
            obj is None or device_refusal(request.user, obj.user) is None
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and (
            obj is None or device_refusal(request.user, obj.user) is None
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        lock_account(obj.user)  # under the admin's transaction, until the audit event below is written
        refusal = device_refusal(request.user, obj.user) if change else enrolment_refusal(request.user, obj.user)
        if refusal:
            raise PermissionDenied(refusal)
        super().save_model(request, obj, form, change)
        changed = ", ".join(name for name in form.changed_data if name != "key")
        record_device_event(request.user, obj, "totp_device_changed" if change else "totp_device_enrolled", changed)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_queryset(request, TOTPDevice.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        devices = list(queryset.select_related("user"))
        for device in devices:
            refusal = device_refusal(request.user, device.user)
            if refusal:
                raise PermissionDenied(refusal)
        for device in devices:
            record_device_event(request.user, device, "totp_device_removed")
        super().delete_queryset(request, queryset)


def replace_access_admins(site: admin.AdminSite) -> None:
    """Our subclasses in place of django.contrib.auth's and django-otp's own registrations."""
    from django.contrib.auth import get_user_model

    for model, model_admin in (
        (get_user_model(), AccessUserAdmin),
        (Group, AccessGroupAdmin),
        (TOTPDevice, AccessTOTPDeviceAdmin),
    ):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
