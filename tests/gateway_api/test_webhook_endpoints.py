"""Webhook endpoints through the API: a gateway key's alone; the secret shown once (at creation,
at rotation); the admin's validation; Idempotency-Key; every write audited with the key."""

from typing import Any

import pytest
from django.test import Client as HttpClient

from gateway_api.models import IdempotencyRecord, KeyKind, Scope
from payments.models import Client
from pgp_project.operations.models import AuditEvent
from webhooks.models import WebhookEndpoint
from webhooks.services import ENDPOINT_SUBJECT, create_endpoint

from .conftest import Api, MakeApi

BASE = "/api/v1/webhook-endpoints/"
NEW_ENDPOINT = {"url": "https://gateway.example.com/hooks", "event_types": ["payout.completed", "payment.received"]}


def patch(api: Api, path: str, body: Any) -> Any:
    return api.http.patch(path, body, content_type="application/json", headers=api.headers())


def created(api: Api, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = api.post(BASE, body or NEW_ENDPOINT)
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_a_new_endpoint_answers_its_secret_once_and_no_read_shows_it(gateway: Api, shop: Client) -> None:
    body = created(gateway, {**NEW_ENDPOINT, "client": shop.pk, "description": "shop's bot"})
    endpoint = WebhookEndpoint.objects.get()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] == endpoint.secret
    assert body["endpoint"]["id"] == endpoint.pk
    assert body["endpoint"]["event_types"] == ["payment.received", "payout.completed"]  # as the service stores them
    assert body["endpoint"]["client"] == shop.pk
    assert body["endpoint"]["enabled"] is True
    assert endpoint.client == shop
    assert endpoint.description == "shop's bot"
    read = gateway.get(f"{BASE}{endpoint.pk}/")
    listed = gateway.get(BASE)
    assert read.status_code == listed.status_code == 200
    assert read.json() == body["endpoint"]
    assert [row["id"] for row in listed.json()["results"]] == [endpoint.pk]
    for answer in (read, listed):
        assert endpoint.secret not in answer.content.decode()
        assert b"secret" not in answer.content


def test_the_list_pages_by_cursor_and_filters(gateway: Api, shop: Client) -> None:
    ids = [created(gateway, {**NEW_ENDPOINT, "description": str(n)})["endpoint"]["id"] for n in range(3)]
    own = created(gateway, {**NEW_ENDPOINT, "client": shop.pk})["endpoint"]["id"]
    gateway.post(f"{BASE}{ids[0]}/disable/", {})
    first = gateway.get(BASE, {"limit": 2}).json()
    assert [row["id"] for row in first["results"]] == [own, ids[2]]
    assert [row["id"] for row in gateway.get(first["next"]).json()["results"]] == [ids[1], ids[0]]
    assert [row["id"] for row in gateway.get(BASE, {"client": shop.pk}).json()["results"]] == [own]
    assert [row["id"] for row in gateway.get(BASE, {"enabled": "false"}).json()["results"]] == [ids[0]]
    for bad in ({"enabled": "maybe"}, {"client": "x"}, {"limit": "0"}, {"status": "enabled"}):
        assert gateway.get(BASE, bad).status_code == 400, bad
    assert gateway.get(f"{BASE}999999/").status_code == 404


def test_an_update_changes_url_event_types_and_description_only(gateway: Api, shop: Client) -> None:
    endpoint_id = created(gateway)["endpoint"]["id"]
    path = f"{BASE}{endpoint_id}/"
    answer = patch(gateway, path, {"url": "https://other.example.com/h", "event_types": ["*"]})
    assert answer.status_code == 200, answer.content
    assert answer.json()["url"] == "https://other.example.com/h"
    assert answer.json()["event_types"] == ["*"]
    assert patch(gateway, path, {"description": "renamed"}).json()["description"] == "renamed"
    # The client is set at creation only: asking to change it is refused, not silently ignored.
    refused: list[dict[str, Any]] = [{"client": shop.pk}, {}, {"url": "ftp://example.com/"}, {"event_types": []}]
    for bad in refused:
        assert patch(gateway, path, bad).status_code == 400, bad
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.event_types, endpoint.description, endpoint.client_id) == (
        "https://other.example.com/h",
        ["*"],
        "renamed",
        None,
    )
    assert patch(gateway, f"{BASE}999999/", {"description": "x"}).status_code == 404


def test_disable_and_enable(gateway: Api) -> None:
    endpoint_id = created(gateway)["endpoint"]["id"]
    disabled = gateway.post(f"{BASE}{endpoint_id}/disable/", {"reason": "maintenance"})
    assert disabled.status_code == 200, disabled.content
    assert disabled.json()["enabled"] is False
    assert "maintenance" in disabled.json()["disabled_reason"]
    assert gateway.post(f"{BASE}{endpoint_id}/disable/", {}).json()["enabled"] is False  # again: no change
    enabled = gateway.post(f"{BASE}{endpoint_id}/enable/", {})
    assert enabled.status_code == 200
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] == ""
    assert WebhookEndpoint.objects.get().enabled
    assert gateway.post(f"{BASE}999999/enable/", {}).status_code == 404


def test_rotating_answers_the_new_secret_once(gateway: Api) -> None:
    first = created(gateway)
    endpoint_id = first["endpoint"]["id"]
    rotated = gateway.post(f"{BASE}{endpoint_id}/rotate-secret/", {})
    assert rotated.status_code == 200, rotated.content
    secret = rotated.json()["secret"]
    assert secret.startswith("whsec_")
    assert secret != first["secret"]
    assert WebhookEndpoint.objects.get().secret == secret
    assert rotated.json()["endpoint"]["id"] == endpoint_id
    assert secret not in gateway.get(f"{BASE}{endpoint_id}/").content.decode()


def test_client_keys_are_refused_on_every_operation(shop_api: Api, shop: Client) -> None:
    endpoint = create_endpoint(url="https://gateway.example.com/hooks", event_types=["*"], client=shop).endpoint
    item = f"{BASE}{endpoint.pk}/"
    assert shop_api.get(BASE).status_code == 403
    assert shop_api.get(item).status_code == 403
    assert shop_api.post(BASE, {**NEW_ENDPOINT, "client": shop.pk}).status_code == 403
    assert patch(shop_api, item, {"description": "mine"}).status_code == 403
    for action in ("disable", "enable", "rotate-secret"):
        assert shop_api.post(f"{item}{action}/", {}).status_code == 403, action
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.description == ""
    assert WebhookEndpoint.objects.count() == 1
    assert not AuditEvent.objects.filter(subject_type=ENDPOINT_SUBJECT, action__in=["updated", "disabled"]).exists()


def test_a_gateway_key_without_the_write_scope_only_reads(make_api: MakeApi, gateway: Api) -> None:
    reader = make_api(KeyKind.GATEWAY, scopes=[Scope.READ, Scope.CLIENTS_WRITE])
    endpoint_id = created(gateway)["endpoint"]["id"]
    assert reader.get(BASE).status_code == 200
    assert reader.get(f"{BASE}{endpoint_id}/").status_code == 200
    assert reader.post(BASE, NEW_ENDPOINT).status_code == 403
    assert patch(reader, f"{BASE}{endpoint_id}/", {"description": "x"}).status_code == 403
    assert reader.post(f"{BASE}{endpoint_id}/rotate-secret/", {}).status_code == 403
    assert WebhookEndpoint.objects.count() == 1


def test_no_key_is_401() -> None:
    assert HttpClient().get(BASE).status_code == 401
    assert HttpClient().post(BASE, NEW_ENDPOINT, content_type="application/json").status_code == 401


@pytest.mark.parametrize(
    "bad",
    [
        {**NEW_ENDPOINT, "event_types": ["payout.exploded"]},
        {**NEW_ENDPOINT, "event_types": []},
        {**NEW_ENDPOINT, "url": "not a url"},
        {**NEW_ENDPOINT, "url": "ftp://example.com/hooks"},
        {**NEW_ENDPOINT, "url": "https://user:pass@example.com/hooks"},
        {**NEW_ENDPOINT, "url": "http://127.0.0.1:8000/hooks"},
        {**NEW_ENDPOINT, "url": "http://10.0.0.5/hooks"},
        {**NEW_ENDPOINT, "url": "http://[::1]/hooks"},
        {**NEW_ENDPOINT, "client": 999999},
        {**NEW_ENDPOINT, "secret": "whsec_mine"},
        {"event_types": ["*"]},
    ],
)
def test_invalid_input_is_400_and_writes_nothing(gateway: Api, bad: dict[str, Any]) -> None:
    answer = gateway.post(BASE, bad)
    assert answer.status_code == 400, answer.content
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEvent.objects.filter(subject_type=ENDPOINT_SUBJECT).exists()


def test_unknown_event_type_is_named_in_the_error(gateway: Api) -> None:
    answer = gateway.post(BASE, {**NEW_ENDPOINT, "event_types": ["payout.completed", "payout.exploded"]})
    assert answer.status_code == 400
    assert "event_types" in answer.json()
    assert "payout.exploded" in answer.content.decode()


def test_a_loopback_url_is_accepted_when_the_setting_allows_private_destinations(gateway: Api, settings: Any) -> None:
    settings.PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = True
    assert created(gateway, {**NEW_ENDPOINT, "url": "http://127.0.0.1:8000/hooks"})["endpoint"]["url"].startswith(
        "http://127.0.0.1"
    )


def test_posts_replay_with_the_same_idempotency_key(gateway: Api) -> None:
    first = gateway.post(BASE, NEW_ENDPOINT, **{"Idempotency-Key": "hook-1"})
    again = gateway.post(BASE, NEW_ENDPOINT, **{"Idempotency-Key": "hook-1"})
    assert first.status_code == again.status_code == 201
    # The same answer, but never the secret again: the stored answer keeps none (shown once).
    assert first.json()["secret"].startswith("whsec_")
    assert again.json() == {**first.json(), "secret": None}
    assert first.json()["secret"] not in IdempotencyRecord.objects.get(key="hook-1").response_body
    assert again["Idempotent-Replayed"] == "true"
    assert WebhookEndpoint.objects.count() == 1
    assert gateway.post(BASE, {**NEW_ENDPOINT, "description": "x"}, **{"Idempotency-Key": "hook-1"}).status_code == 422
    endpoint_id = first.json()["endpoint"]["id"]
    rotated = gateway.post(f"{BASE}{endpoint_id}/rotate-secret/", {}, **{"Idempotency-Key": "rotate-1"})
    replayed = gateway.post(f"{BASE}{endpoint_id}/rotate-secret/", {}, **{"Idempotency-Key": "rotate-1"})
    assert replayed["Idempotent-Replayed"] == "true"
    assert rotated.json()["secret"] == WebhookEndpoint.objects.get().secret
    assert replayed.json()["secret"] is None
    assert AuditEvent.objects.filter(subject_type=ENDPOINT_SUBJECT, action="secret_rotated").count() == 1
    # The same Idempotency-Key on another path is another request: refused, not replayed.
    assert gateway.post(f"{BASE}{endpoint_id}/disable/", {}, **{"Idempotency-Key": "rotate-1"}).status_code == 422
    assert IdempotencyRecord.objects.count() == 2


def test_every_write_is_audited_with_the_keys_name(gateway: Api) -> None:
    assert gateway.key is not None
    endpoint_id = created(gateway)["endpoint"]["id"]
    patch(gateway, f"{BASE}{endpoint_id}/", {"description": "renamed"})
    gateway.post(f"{BASE}{endpoint_id}/disable/", {"reason": "maintenance"})
    gateway.post(f"{BASE}{endpoint_id}/enable/", {})
    gateway.post(f"{BASE}{endpoint_id}/rotate-secret/", {})
    events = list(AuditEvent.objects.filter(subject_type=ENDPOINT_SUBJECT, subject_id=endpoint_id).order_by("id"))
    assert [event.action for event in events] == ["created", "updated", "disabled", "enabled", "secret_rotated"]
    assert all(gateway.key.name in event.reason and gateway.key.prefix in event.reason for event in events)
    assert all(event.actor_id == gateway.key.user_id for event in events)
    assert "maintenance" in events[2].reason
    assert WebhookEndpoint.objects.get().created_by_id == gateway.key.user_id
