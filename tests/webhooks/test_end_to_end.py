"""End to end, with a real Celery worker and a real receiver: events committed while a worker is
SIGKILLed in the middle of a delivery and while the receiver is down are all delivered once it
is back (at least once, each id), and nothing is delivered that the outbox does not hold."""

import time
from collections.abc import Iterator

import pytest
from django.db import transaction

from pgp_project.outbox.events import record_event
from pgp_project.outbox.models import OutboxEvent
from standins.webhook_receiver import WebhookReceiver
from webhooks import services, tasks
from webhooks.models import DeliveryStatus, WebhookDelivery

from ..conftest import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKER_ENV = {
    "PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS": "1",
    "PGP_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
    "PGP_WEBHOOK_RETRY_MAX_DELAY_SECONDS": "2",
    "PGP_WEBHOOK_LEASE_SECONDS": "4",
    "PGP_WEBHOOK_READ_TIMEOUT_SECONDS": "3",
}


@pytest.fixture
def workers(django_db_setup: None) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def commit_events(first: int, count: int) -> None:
    for subject in range(first, first + count):
        with transaction.atomic():
            record_event("payout.completed", ("payout", subject), {"amount": f"{subject}.000001"})


def wait_for(condition: object, timeout: float, *, sweep_every: float = 0) -> bool:
    """Poll `condition()`; meanwhile enqueue the sweep as Beat would (every `sweep_every` s)."""
    deadline = time.monotonic() + timeout
    next_sweep = time.monotonic()
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        if sweep_every and time.monotonic() >= next_sweep:
            tasks.sweep.delay()
            next_sweep = time.monotonic() + sweep_every
        time.sleep(0.2)
    return False


def test_every_event_is_delivered_through_a_worker_kill_and_a_receiver_outage(
    workers: list[WorkerProcess], settings: pytest.FixtureRequest
) -> None:
    settings.PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = True  # type: ignore[attr-defined]
    receiver = WebhookReceiver().start()
    try:
        created = services.create_endpoint(url=receiver.url, event_types=["payout.completed"])
        receiver.secret = created.secret
        workers.append(WorkerProcess(WORKER_ENV))

        # 1. Ordinary traffic: each commit enqueues its dispatch; the worker delivers.
        commit_events(1, 20)
        assert wait_for(lambda: len(receiver.ids()) == 20, 60), receiver.ids()

        # 2. The receiver answers slowly; the worker is SIGKILLed while a delivery is in flight.
        receiver.delay_seconds = 1.5
        requests_before = receiver.requests
        commit_events(21, 5)
        assert wait_for(lambda: receiver.requests > requests_before, 30)
        workers[-1].kill()
        in_flight = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, claimed_until__isnull=False).count()
        assert in_flight >= 1  # a claim its dead worker will never finish
        receiver.delay_seconds = 0

        # 3. The receiver goes down; events keep coming; a new worker fails to reach it and backs off.
        receiver.stop()
        commit_events(26, 10)
        workers.append(WorkerProcess(WORKER_ENV))
        assert wait_for(
            lambda: WebhookDelivery.objects.filter(attempts__gte=1, last_status_code__isnull=True).exists(),
            30,
            sweep_every=1,
        )
        time.sleep(3)

        # 4. It comes back: the sweep (Beat's job) re-sends what is due, expired claims included.
        receiver.start()
        everything = set(OutboxEvent.objects.values_list("event_id", flat=True))
        assert len(everything) == 35
        assert wait_for(lambda: receiver.ids() >= everything, 120, sweep_every=1), everything - receiver.ids()
        assert wait_for(
            lambda: not WebhookDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists(), 30, sweep_every=1
        )
    finally:
        receiver.stop()

    # Every event delivered at least once, none invented, every signature verified.
    assert receiver.ids() == everything
    assert receiver.rejected == []
    assert len(receiver.received) >= 35
    by_id = {item.webhook_id: item.body for item in receiver.received}
    for event in OutboxEvent.objects.all():
        assert by_id[event.event_id]["sequence"] == event.sequence
        assert by_id[event.event_id]["data"] == event.payload
