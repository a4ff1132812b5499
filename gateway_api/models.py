"""API keys and the stored answers of idempotent requests.

A key is stored hashed (djangorestframework-api-key: only its prefix is readable), named, with an
expiry, its scopes and when it was last used. It acts through a user of its own (`ApiKeyUser`), so
every audit event and every requested change names the key, and a key holds no staff permission:
it can request changes of a client, never confirm one, approve a payout or operate a batch.
"""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import Q
from rest_framework_api_key.models import AbstractAPIKey


class KeyKind(models.TextChoices):
    GATEWAY = "gateway", "gateway (manages every client)"
    CLIENT = "client", "client (sees one client's data only)"


class Scope(models.TextChoices):
    READ = "read", "read"
    CLIENTS_WRITE = "clients:write", "create clients and request changes of them"
    WEBHOOKS_WRITE = "webhooks:write", "create, change, disable and enable webhook endpoints, rotate their secrets"


class ApiKey(AbstractAPIKey):
    kind = models.CharField(max_length=10, choices=KeyKind.choices)
    client = models.ForeignKey(
        "payments.Client",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="A client key sees this client's data only.",
    )
    scopes = models.JSONField(default=list, blank=True, help_text='Of "read", "clients:write", "webhooks:write".')
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The key's own user: the actor of its audit events and the requester of its changes. It has
    # no password and no staff flag, so it can never sign in to the console.
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=KeyKind.values), name="api_key_kind_valid"),
            # A client key is bound to exactly one client; a gateway key to none.
            models.CheckConstraint(
                condition=(Q(kind=KeyKind.CLIENT) & Q(client__isnull=False))
                | (Q(kind=KeyKind.GATEWAY) & Q(client__isnull=True)),
                name="api_key_client_matches_kind",
            ),
        ]


class ApiKeyUser(User):
    """The user an API key acts as. Its permissions are its key's scopes, never rows of
    auth_permission: a key cannot be given a staff permission, and the four-eyes confirmation
    permission is not among what any scope grants."""

    class Meta:
        proxy = True

    key_permissions: frozenset[str] = frozenset()

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_active and perm in self.key_permissions

    def has_perms(self, perm_list: object, obj: object = None) -> bool:
        return all(self.has_perm(perm) for perm in perm_list)  # type: ignore[attr-defined]

    def has_module_perms(self, app_label: str) -> bool:
        return False


class IdempotencyStatus(models.TextChoices):
    STARTED = "started"
    DONE = "done"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one API key: claimed (a unique row, committed before the request
    runs, so a concurrent twin finds it), then completed with the answer to replay."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    body_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=IdempotencyStatus.choices, default=IdempotencyStatus.STARTED)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_unique_per_api_key"),
            models.CheckConstraint(
                condition=Q(status=IdempotencyStatus.STARTED) | Q(response_status__isnull=False),
                name="idempotency_done_has_answer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"
