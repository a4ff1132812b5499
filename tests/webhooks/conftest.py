from collections.abc import Iterator

import pytest
from django.db import transaction

from pgp_project.outbox.events import record_event
from standins.webhook_receiver import WebhookReceiver
from webhooks import services
from webhooks.models import WebhookEndpoint


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver on loopback that verifies signatures with the standardwebhooks library."""
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def allow_loopback(settings: pytest.FixtureRequest) -> None:
    settings.PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = True  # type: ignore[attr-defined]


@pytest.fixture
def endpoint(receiver: WebhookReceiver, allow_loopback: None) -> WebhookEndpoint:
    created = services.create_endpoint(url=receiver.url, event_types=["*"])
    receiver.secret = created.secret
    return created.endpoint


def an_event(subject_id: int = 1, type: str = "payout.created", client_id: int | None = None) -> int:
    with transaction.atomic():
        return record_event(type, ("payout", subject_id), {"amount": "1.500000"}, client_id=client_id)
