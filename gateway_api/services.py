"""The API's writes, through the same services as the admin: a new client is opened inactive with
its activation requested (`open_client`), a change of a money control is requested
(`request_change`); an operator confirms each in the console. Webhook endpoints are created,
changed, disabled, enabled and given a new secret by the webhooks services the admin calls. Each
names the key in its audit event (the actor is the key's own user; the reason says which key)."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError

from payments.models import Client
from payments.money_controls import open_client
from pgp_project.operations.models import PendingChange
from pgp_project.operations.pending_changes import request_change
from webhooks import services as webhooks
from webhooks.models import WebhookEndpoint

from .keys import acting_user, describe_key
from .models import ApiKey

# The money controls a gateway may ask to change (payments.money_controls.CLIENT_GUARDED_FIELDS
# but the channel id, which only an operator moves, and the activation, which has its own path).
CHANGEABLE_FIELDS = (
    "wallet_address",
    "payout_extra_id",
    "payout_network",
    "payout_currency",
    "payout_threshold_usd",
    "payout_strategy",
    "fee_percent_override",
)


def _reason(key: ApiKey, reason: str) -> str:
    return f"via {describe_key(key)}" + (f": {reason}" if reason else "")


def create_client(key: ApiKey, values: Mapping[str, Any]) -> tuple[Client, PendingChange]:
    """A new client, inactive until an operator confirms its activation (as from the admin)."""
    client = Client(**values, is_active=True)  # asks open_client for the activation request
    try:
        activation = open_client(client, user=acting_user(key), reason=_reason(key, "new client"))
    except IntegrityError as error:
        # Two requests for one channel id at once: the validation passed for both, the unique
        # index takes one. The other is told, as if it had come second.
        if Client.objects.filter(external_id=values.get("external_id")).exists():
            raise ValidationError({"external_id": ["A client with this external id already exists."]}) from error
        raise
    assert activation is not None, "open_client requests the activation of a client asked for active"
    return client, activation


def request_client_change(key: ApiKey, client: Client, values: Mapping[str, Any], reason: str) -> PendingChange | None:
    """A pending change of the client's money controls; None when nothing differs."""
    return request_change(Client, client.pk, dict(values), user=acting_user(key), reason=_reason(key, reason))


def create_webhook_endpoint(key: ApiKey, values: Mapping[str, Any]) -> webhooks.CreatedEndpoint:
    """A new endpoint, enabled; its secret is in the answer only (the caller shows it once)."""
    return webhooks.create_endpoint(**values, created_by=acting_user(key), reason=_reason(key, ""))


def update_webhook_endpoint(key: ApiKey, endpoint: WebhookEndpoint, values: Mapping[str, Any]) -> WebhookEndpoint:
    return webhooks.update_endpoint(endpoint.pk, **values, actor=acting_user(key), reason=_reason(key, ""))


def disable_webhook_endpoint(key: ApiKey, endpoint: WebhookEndpoint, reason: str) -> bool:
    return webhooks.disable_endpoint(endpoint.pk, reason=_reason(key, reason), actor=acting_user(key))


def enable_webhook_endpoint(key: ApiKey, endpoint: WebhookEndpoint) -> bool:
    return webhooks.enable_endpoint(endpoint.pk, actor=acting_user(key), reason=_reason(key, ""))


def rotate_webhook_secret(key: ApiKey, endpoint: WebhookEndpoint) -> str:
    return webhooks.rotate_secret(endpoint.pk, actor=acting_user(key), reason=_reason(key, ""))
