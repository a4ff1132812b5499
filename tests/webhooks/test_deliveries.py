"""Deliveries: signed by the Standard Webhooks scheme (checked by the standardwebhooks library in
the receiver), at least once, retried with backoff, capped, and refused to private destinations
unless allowed. The receiver is a real HTTP server on loopback; nothing of ours is mocked."""

import json
import logging
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from payments.models import Client
from pgp_project.operations.attention import attention_items
from pgp_project.outbox.models import OutboxEvent
from standins.webhook_receiver import WebhookReceiver
from webhooks import http, services
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

from ..factories import ClientFactory, StaffUserFactory
from .conftest import an_event

pytestmark = pytest.mark.django_db


def make_due() -> None:
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())


def test_a_delivery_is_signed_and_verifies_with_the_standard_library(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    pk = an_event(subject_id=7)
    event = OutboxEvent.objects.get(pk=pk)
    assert services.dispatch_events() != []
    assert services.send_due() == 1
    assert receiver.rejected == []
    [got] = receiver.received
    assert got.webhook_id == event.event_id
    assert got.body == {
        "id": event.event_id,
        "type": "payout.created",
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "subject": {"type": "payout", "id": 7},
        "sequence": 1,
        "data": {"amount": "1.500000"},
    }
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.DELIVERED, 1, 204)


def test_a_wrong_secret_fails_verification_at_the_receiver(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    receiver.secret = services.new_secret()
    an_event()
    services.dispatch_events()
    services.send_due()
    assert receiver.received == []
    assert len(receiver.rejected) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING  # a 400: retried later


def test_dispatching_twice_makes_one_delivery_per_endpoint(endpoint: WebhookEndpoint) -> None:
    pk = an_event()
    services.dispatch_events([pk])
    OutboxEvent.objects.filter(pk=pk).update(dispatched_at=None)  # as if the first run's mark were lost
    services.dispatch_events([pk])
    assert WebhookDelivery.objects.filter(event_id=pk).count() == 1


def test_endpoints_get_only_the_types_and_the_client_they_asked_for(
    receiver: WebhookReceiver, allow_loopback: None
) -> None:
    ours, theirs = ClientFactory.create(), ClientFactory.create()
    payouts_only = services.create_endpoint(url=receiver.url, event_types=["payout.completed"]).endpoint
    one_client = services.create_endpoint(url=receiver.url, event_types=["*"], client=ours).endpoint
    an_event(1, "payout.completed", client_id=ours.pk)
    an_event(2, "payout.completed", client_id=theirs.pk)
    an_event(3, "payout.created", client_id=ours.pk)
    services.dispatch_events()
    got = set(WebhookDelivery.objects.values_list("endpoint_id", "event__subject_id"))
    assert got == {(payouts_only.pk, 1), (payouts_only.pk, 2), (one_client.pk, 1), (one_client.pk, 3)}


def test_a_500_is_retried_with_backoff_then_delivered(endpoint: WebhookEndpoint, receiver: WebhookReceiver) -> None:
    receiver.status = 500
    an_event()
    services.dispatch_events()
    before = timezone.now()
    services.send_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert delivery.next_attempt_at > before  # not due again at once
    assert services.send_due() == 0  # nothing due yet
    make_due()
    services.send_due()
    assert WebhookDelivery.objects.get().attempts == 2
    receiver.status = 200
    make_due()
    services.send_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 3)
    assert len(receiver.received) == 1
    assert receiver.requests == 3
    assert list(WebhookAttempt.objects.order_by("id").values_list("status_code", flat=True)) == [500, 500, 200]
    endpoint.refresh_from_db()
    assert (endpoint.failing_since, endpoint.consecutive_failures) == (None, 0)


def test_a_receiver_that_is_down_is_retried_until_it_is_back(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    receiver.stop()
    an_event()
    services.dispatch_events()
    services.send_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error
    receiver.start()  # the same port
    make_due()
    services.send_due()
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1


def test_the_backoff_doubles_with_jitter_up_to_its_cap(settings: pytest.FixtureRequest) -> None:
    settings.PGP_WEBHOOK_RETRY_BASE_SECONDS = 5  # type: ignore[attr-defined]
    settings.PGP_WEBHOOK_RETRY_MAX_DELAY_SECONDS = 3600  # type: ignore[attr-defined]
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (20, 3600)]:
        delays = [services.retry_delay(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1  # jitter


def test_a_delivery_past_its_retry_window_is_given_up_with_an_alert(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    an_event()
    services.dispatch_events()
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(days=4))
    with caplog.at_level(logging.WARNING, logger="pgp.alerts"):
        services.send_due()
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED
    assert any(line.startswith("ALERT webhook_delivery_failed") for line in caplog.messages)


def test_an_endpoint_that_keeps_failing_is_disabled_with_an_alert(
    endpoint: WebhookEndpoint,
    receiver: WebhookReceiver,
    settings: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.PGP_WEBHOOK_DISABLE_AFTER_SECONDS = 0  # type: ignore[attr-defined]
    settings.PGP_WEBHOOK_DISABLE_AFTER_FAILURES = 3  # type: ignore[attr-defined]
    receiver.status = 500
    for subject in range(3):
        an_event(subject_id=subject)
    services.dispatch_events()
    with caplog.at_level(logging.WARNING, logger="pgp.alerts"):
        for _ in range(3):
            make_due()
            services.send_due(limit=1)
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.consecutive_failures == 3
    assert [line for line in caplog.messages if line.startswith("ALERT webhook_endpoint_disabled")]
    # ... and it waits in the needs-attention queue.
    [waiting] = attention_items(kind="webhook_endpoint_disabled")
    assert waiting.title.startswith(f"webhook endpoint #{endpoint.pk}")
    assert "in a row" in waiting.reason
    # Disabled: nothing more is sent, its deliveries wait ...
    make_due()
    assert services.send_due() == 0
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 3
    # ... until it is enabled again.
    receiver.status = 200
    assert services.enable_endpoint(endpoint.pk)
    services.send_due()
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3
    assert attention_items(kind="webhook_endpoint_disabled") == []


def test_the_answer_is_read_capped(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver, settings: pytest.FixtureRequest
) -> None:
    settings.PGP_WEBHOOK_MAX_RESPONSE_BYTES = 4096  # type: ignore[attr-defined]
    receiver.body_bytes = 5_000_000
    receiver.status = 200
    answer = http.post(receiver.url, b"{}", services.signed_headers(receiver.secret, "evt_capped", b"{}"))
    assert answer.ok
    assert len(answer.excerpt) == 4096
    receiver.status = 500
    an_event()
    services.dispatch_events()
    services.send_due()
    assert len(WebhookAttempt.objects.get().response_excerpt) <= 4096


def test_a_claimed_attempt_is_not_claimed_twice(endpoint: WebhookEndpoint) -> None:
    an_event()
    [delivery_id] = services.dispatch_events()
    first = services.claim(delivery_id)
    assert first is not None
    assert services.claim(delivery_id) is None
    assert services.claim() is None
    # Its lease expires (its worker died): it is claimed again, and the dead claim writes nothing.
    WebhookDelivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    second = services.claim(delivery_id)
    assert second is not None
    assert second[1] != first[1]
    assert not services.record_outcome(WebhookDelivery.objects.get(), first[1], http.Answer(200, "", "", 1))
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/x", "ftp://a.example/"],
)
def test_private_destinations_are_refused_at_save(url: str) -> None:
    with pytest.raises(ValidationError):
        services.create_endpoint(url=url, event_types=["*"])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "169.254.169.254",
        "::1",
        "192.168.1.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::1",
    ],
)
def test_private_addresses_are_refused_at_connect(address: str, settings: pytest.FixtureRequest) -> None:
    assert http.address_refused(address)
    settings.PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = True  # type: ignore[attr-defined]
    assert http.address_refused(address) is None


def test_a_name_that_resolves_to_loopback_is_refused_when_it_connects(receiver: WebhookReceiver) -> None:
    # Saved by name (no address to judge yet) ...
    url = f"http://localhost:{receiver.port}/webhooks"
    created = services.create_endpoint(url=url, event_types=["*"])
    receiver.secret = created.secret
    an_event()
    services.dispatch_events()
    services.send_due()
    # ... but the connected socket's peer is 127.0.0.1: refused before any request was sent.
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert "refused destination" in delivery.last_error
    assert "loopback" in delivery.last_error
    assert receiver.requests == 0


def test_staff_with_the_permission_resend_a_delivery_from_the_admin(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    an_event()
    services.dispatch_events()
    services.send_due()
    delivery = WebhookDelivery.objects.get(status=DeliveryStatus.DELIVERED)
    url = reverse("admin:webhooks_webhookdelivery_changelist")
    plain = StaffUserFactory.create(username="viewer", is_superuser=False)
    plain.user_permissions.add(*_perms("view_webhookdelivery"))
    http_client = HttpClient()
    http_client.force_login(plain)
    http_client.post(url, {"action": "resend", "_selected_action": [delivery.pk]})
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED  # no such action for them
    resender = StaffUserFactory.create(username="resender", is_superuser=False)
    resender.user_permissions.add(*_perms("view_webhookdelivery", "resend_webhook"))
    http_client.force_login(resender)
    response = http_client.post(url, {"action": "resend", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING
    services.send_due()
    assert len(receiver.received) == 2  # at least once: the same id twice
    assert len(receiver.ids()) == 1


def test_admin_pages_of_endpoints_deliveries_and_events_render(endpoint: WebhookEndpoint) -> None:
    an_event()
    services.dispatch_events()
    services.send_due()
    http_client = HttpClient()
    http_client.force_login(StaffUserFactory(username="boss", is_superuser=True))
    delivery = WebhookDelivery.objects.get()
    for url in [
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}",
        reverse("admin:webhooks_webhookdelivery_changelist") + f"?event__id__exact={delivery.event_id}",
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:outbox_outboxevent_changelist"),
        reverse("admin:outbox_outboxevent_change", args=[delivery.event_id]),
    ]:
        response = http_client.get(url)
        assert response.status_code == 200, url
        assert endpoint.secret not in response.content.decode()


def test_the_admin_shows_a_new_endpoints_secret_once(db: None) -> None:
    http_client = HttpClient()
    http_client.force_login(StaffUserFactory(username="boss", is_superuser=True))
    response = http_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"url": "https://hooks.example.com/in", "description": "", "event_types": ["payout.completed"]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.secret in response.content.decode()
    assert endpoint.created_by is not None
    again = http_client.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert endpoint.secret not in again.content.decode()
    http_client.post(
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        {"url": "https://hooks.example.com/v2", "description": "v2", "event_types": ["*"]},
    )
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.description) == ("https://hooks.example.com/v2", ["*"], "v2")
    refused = http_client.post(
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        {"url": "http://169.254.169.254/latest/meta-data", "description": "", "event_types": ["*"]},
    )
    assert refused.status_code == 200  # the form again, with the error
    assert "refused destination" in refused.content.decode()


def test_metrics_export_the_outbox_lag_and_delivery_counters(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    an_event()
    http_client = HttpClient()
    http_client.force_login(StaffUserFactory(username="boss", is_superuser=True))
    text = http_client.get("/metrics").content.decode()
    lag = [line for line in text.splitlines() if line.startswith("pgp_outbox_lag_seconds ")]
    assert lag
    assert float(lag[0].split()[1]) >= 0
    services.dispatch_events()
    services.send_due()
    text = http_client.get("/metrics").content.decode()
    assert [line for line in text.splitlines() if line.startswith("# TYPE pgp_webhook_attempts") and "counter" in line]
    assert 'pgp_webhook_attempts_total{outcome="delivered"} 1.0' in text
    assert "pgp_outbox_lag_seconds 0.0" in text


def _perms(*codenames: str) -> list:
    from django.contrib.auth.models import Permission

    return list(Permission.objects.filter(codename__in=codenames))


def test_event_types_are_checked(allow_loopback: None) -> None:
    with pytest.raises(ValidationError):
        services.create_endpoint(url="https://hooks.example.com/", event_types=["payout.exploded"])
    created = services.create_endpoint(url="https://hooks.example.com/", event_types=["payout.completed", "*"])
    assert created.endpoint.event_types == ["*"]
    assert json.dumps(created.endpoint.event_types)
    assert Client.objects.count() == 0


def test_the_sweep_dispatches_every_waiting_event_and_sends_what_is_due(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver
) -> None:
    from webhooks.tasks import sweep

    WebhookEndpoint.objects.update(event_types=["payout.completed"])
    for subject in range(600):  # more than one batch of events nobody wants ...
        an_event(subject_id=subject, type="payout.created")
    an_event(subject_id=1000, type="payout.completed")  # ... and one that is wanted
    sweep()
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert [item.body["subject"]["id"] for item in receiver.received] == [1000]


def test_old_finished_history_is_pruned_but_a_subjects_sequence_goes_on(
    endpoint: WebhookEndpoint, receiver: WebhookReceiver, settings: pytest.FixtureRequest
) -> None:
    settings.PGP_WEBHOOK_RETENTION_DAYS = 30  # type: ignore[attr-defined]
    for _ in range(3):
        an_event(subject_id=5)
    services.dispatch_events()
    services.send_due()
    receiver.status = 500
    an_event(subject_id=6)
    services.dispatch_events()
    services.send_due()  # pending: kept whatever its age
    old = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.update(created_at=old)
    OutboxEvent.objects.update(created_at=old)
    assert services.prune_history() == (3, 2)  # subject 5's first two events; its third is its latest
    assert list(OutboxEvent.objects.filter(subject_id=5).values_list("sequence", flat=True)) == [3]
    assert WebhookDelivery.objects.get().event.subject_id == 6
    assert not WebhookAttempt.objects.exclude(delivery__event__subject_id=6).exists()
    assert OutboxEvent.objects.get(pk=an_event(subject_id=5)).sequence == 4
