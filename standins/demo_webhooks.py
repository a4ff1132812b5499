"""The demo's webhook endpoint: every event, to the receiver run_demo starts on loopback, which
verifies each delivery with the standardwebhooks library and prints it."""

from webhooks import services
from webhooks.models import WebhookEndpoint

DEMO_WEBHOOK_DESCRIPTION = "demo receiver (run_demo)"


def demo_receiver_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/webhooks"


def ensure_demo_webhook(url: str) -> str:
    """A fresh endpoint for this run (its secret is shown once: the receiver gets it now); the
    previous runs' demo endpoints are disabled, so their pending deliveries wait, unsent."""
    for endpoint_id in WebhookEndpoint.objects.filter(description=DEMO_WEBHOOK_DESCRIPTION, enabled=True).values_list(
        "pk", flat=True
    ):
        services.disable_endpoint(endpoint_id, reason="replaced by the next demo run")
    return services.create_endpoint(url=url, event_types=["*"], description=DEMO_WEBHOOK_DESCRIPTION).secret
