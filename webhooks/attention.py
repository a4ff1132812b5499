"""What the webhooks ask of a person: an endpoint the sender disabled because it kept failing."""

from pgp_project.operations.attention import (
    AttentionItem,
    AttentionSource,
    admin_action_url,
    admin_change_url,
    queryset_source,
)

from .models import WebhookEndpoint


def _disabled_item(endpoint: WebhookEndpoint) -> AttentionItem:
    return AttentionItem(
        kind="webhook_endpoint_disabled",
        title=f"webhook endpoint #{endpoint.pk} {endpoint.url}",
        url=admin_change_url(endpoint),
        since=endpoint.disabled_at,
        reason=endpoint.disabled_reason,
        last_error="",
        action_label="Enable the selected endpoints (once its owner says it answers again)",
        action_url=admin_action_url(endpoint),
    )


def disabled_endpoints_source() -> AttentionSource:
    return queryset_source(
        "webhook_endpoint_disabled",
        "Webhook endpoints disabled after failing",
        lambda: WebhookEndpoint.objects.filter(enabled=False, disabled_for_failures=True),
        _disabled_item,
        newest_first=("-disabled_at", "-id"),
        since_field="disabled_at",
    )
