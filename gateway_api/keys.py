"""Creating API keys and reading who a key may act for.

A key is shown once, when it is created (in the admin or by `create_api_key`); only its hash and
prefix are stored. Its permissions come from its scopes: `clients:write` lets a gateway key create
clients and request changes of their money controls (which a TOTP-verified operator then
confirms in the console), `webhooks:write` manage webhook endpoints; no scope grants confirming,
approving or operating anything.
"""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.crypto import get_random_string

from payments.models import Client
from payments.money_controls import CHANGE_DESTINATION, CHANGE_FEES_AND_THRESHOLDS
from pgp_project.operations.state_machine import record_event

from .models import ApiKey, ApiKeyUser, KeyKind, Scope

# The audit trail's subject of a key: its events are filed under its user's id (a key's own
# primary key is text; the audit trail's ids are numbers).
API_KEY_SUBJECT = "api_key"

# What each scope lets a key's user request; the kernel's four-eyes confirmation permission is
# deliberately in none of them.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    Scope.READ: frozenset(),
    Scope.CLIENTS_WRITE: frozenset({CHANGE_DESTINATION, CHANGE_FEES_AND_THRESHOLDS}),
    # Checked by the API's permission class, not by a service: the webhooks services take an
    # actor for the audit trail only.
    Scope.WEBHOOKS_WRITE: frozenset(),
}
DEFAULT_SCOPES = {
    KeyKind.GATEWAY: [Scope.READ, Scope.CLIENTS_WRITE, Scope.WEBHOOKS_WRITE],
    KeyKind.CLIENT: [Scope.READ],
}
# What a client key may never hold: it sees its own client's data only.
GATEWAY_ONLY_SCOPES = frozenset({Scope.CLIENTS_WRITE, Scope.WEBHOOKS_WRITE})


def clean_scopes(kind: str, scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise ValidationError({"scopes": f"unknown scopes {unknown}; known: {Scope.values}"})
    if kind == KeyKind.CLIENT and GATEWAY_ONLY_SCOPES & set(scopes):
        raise ValidationError({"scopes": "a client key reads its own client's data only"})
    return sorted(set(scopes))


def new_key_user(name: str) -> User:
    """The key's own user: no password, no staff flag, no permission rows (`ApiKeyUser`)."""
    username = f"api-key:{name}"[:130] + ":" + get_random_string(8)
    user = User(username=username, is_staff=False, is_superuser=False, is_active=True)
    user.set_unusable_password()
    user.save()
    return user


def create_api_key(
    *,
    name: str,
    kind: str,
    client: Client | None = None,
    scopes: list[str] | None = None,
    expiry_date: datetime | None = None,
    created_by: Any = None,
) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once: only its hash is kept)."""
    if kind not in KeyKind.values:
        raise ValidationError({"kind": f"kind must be one of {KeyKind.values}"})
    if (kind == KeyKind.CLIENT) != (client is not None):
        raise ValidationError({"client": "a client key names exactly one client; a gateway key none"})
    chosen = clean_scopes(kind, list(DEFAULT_SCOPES[KeyKind(kind)] if scopes is None else scopes))
    with transaction.atomic():
        key = ApiKey(
            name=name,
            kind=kind,
            client=client,
            scopes=chosen,
            expiry_date=expiry_date,
            user=new_key_user(name),
            created_by=created_by if getattr(created_by, "pk", None) is not None else None,
        )
        secret = ApiKey.objects.assign_key(key)
        key.full_clean(exclude=["id", "prefix", "hashed_key"])
        key.save()
        record_event(
            API_KEY_SUBJECT,
            key.user_id,
            action="created",
            from_status="",
            to_status="active",
            actor=key.created_by,
            reason=f"{describe_key(key)} created: {kind} key"
            + (f" of client {client.external_id!r}" if client else "")
            + f", scopes {', '.join(chosen)}, expires {expiry_date.isoformat() if expiry_date else 'never'}",
        )
    return key, secret


def revoke_api_key(key: ApiKey, *, user: Any) -> None:
    """Revoked for good (the library refuses to un-revoke), and audited."""
    with transaction.atomic():
        if not ApiKey.objects.filter(pk=key.pk, revoked=False).update(revoked=True):
            return
        key.revoked = True
        record_event(
            API_KEY_SUBJECT,
            key.user_id,
            action="revoked",
            from_status="active",
            to_status="revoked",
            actor=user,
            reason=f"{describe_key(key)} revoked by {user}",
        )


def acting_user(key: ApiKey) -> ApiKeyUser:
    """The user a request with this key acts as, holding the permissions of the key's scopes."""
    stored = key.user  # loaded with the key (select_related): no query of its own
    user = ApiKeyUser(**{field.attname: getattr(stored, field.attname) for field in User._meta.concrete_fields})
    user._state.adding = False
    user.key_permissions = frozenset().union(*(SCOPE_PERMISSIONS.get(scope, frozenset()) for scope in key.scopes))
    return user


def describe_key(key: ApiKey) -> str:
    """How audit events name a key: its name and visible prefix."""
    return f"API key {key.name!r} ({key.prefix})"


def key_creators(user_id: int) -> set[int]:
    """The people who minted the API key acting as this account (none for a person's account)."""
    return set(ApiKey.objects.filter(user_id=user_id, created_by__isnull=False).values_list("created_by_id", flat=True))
