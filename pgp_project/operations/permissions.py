"""Service-side checks of the dedicated money permissions (the admin checks them too)."""

from typing import Any

from django.core.exceptions import PermissionDenied


def require_permission(actor: Any, permission: str) -> None:
    """A person acting must hold `permission`; the system (no actor) always may."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied(f"{actor} may not do this (needs {permission})")
