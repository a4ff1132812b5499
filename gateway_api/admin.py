"""API keys in the admin: created by staff who may add them, the secret shown once; revoked,
never deleted (its audit events name its user)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .keys import clean_scopes, create_api_key, revoke_api_key
from .models import ApiKey, IdempotencyRecord, Scope

# The library's own key model is unused: ours adds kinds, scopes and the key's user.
admin.site.unregister(APIKey)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "kind", "client", "scopes", "expiry_date", "revoked"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "kind" in cleaned and "scopes" in cleaned:
            cleaned["scopes"] = clean_scopes(cleaned["kind"], list(cleaned["scopes"]))
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    form = ApiKeyForm
    list_display: Any = (
        "prefix",
        "name",
        "kind",
        "client",
        "scopes",
        "created",
        "expiry_date",
        "last_used_at",
        "revoked",
    )
    list_filter = ("kind", "revoked", "created")  # type: ignore[assignment]
    search_fields = ("name", "prefix")
    raw_id_fields = ("client",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("prefix", "last_used_at")
        # What a key is and whose data it sees never changes: a new key is made instead.
        fixed = ("prefix", "kind", "client", "scopes", "last_used_at", "created_by")
        return (*fixed, "name", "revoked", "expiry_date") if obj.revoked else fixed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any = None, change: bool = False) -> None:
        if change:
            revoking = "revoked" in form.changed_data and obj.revoked
            if revoking:
                obj.revoked = False  # the service revokes it, with its audit event
            obj.save()
            if revoking:
                revoke_api_key(obj, user=request.user)
            return
        key, secret = create_api_key(
            name=obj.name,
            kind=obj.kind,
            client=obj.client,
            scopes=list(obj.scopes),
            expiry_date=obj.expiry_date,
            created_by=request.user,
        )
        obj.pk, obj.prefix = key.pk, key.prefix
        messages.warning(
            request,
            f"The API key {key.name!r} is: {secret} . Store it now: it is not shown again (only its hash is kept).",
        )


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("key", "api_key", "method", "path", "status", "response_status", "created_at")
    list_filter = ("status",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
