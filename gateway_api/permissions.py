"""Who may call what: any valid key reads (what its kind lets it see); writing clients needs a
gateway key with the `clients:write` scope. Webhook endpoints are a gateway key's alone, read or
written: an endpoint may receive every client's events, and its secret signs them; writing them
needs the `webhooks:write` scope."""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from .models import ApiKey, KeyKind, Scope


def request_key(request: Request) -> ApiKey:
    key = request.auth
    assert isinstance(key, ApiKey), "the permission classes let no request without a key through"
    return key


class HasValidApiKey(permissions.BasePermission):
    message = "An API key is required: Authorization: Api-Key <key>."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey) and Scope.READ in request.auth.scopes


class CanWriteClients(permissions.BasePermission):
    message = "Only a gateway key with the clients:write scope creates clients or requests changes of them."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        key = request.auth
        return isinstance(key, ApiKey) and key.kind == KeyKind.GATEWAY and Scope.CLIENTS_WRITE in key.scopes


class ManagesWebhooks(permissions.BasePermission):
    message = "Only a gateway key manages webhook endpoints; changing them needs its webhooks:write scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey) or key.kind != KeyKind.GATEWAY:
            return False
        return request.method in permissions.SAFE_METHODS or Scope.WEBHOOKS_WRITE in key.scopes
