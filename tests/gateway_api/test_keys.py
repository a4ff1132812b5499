"""API keys: stored hashed, shown once (admin and command), their last use recorded, their kinds
and scopes checked; the periodic job that prunes idempotency keys is registered."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from gateway_api.keys import API_KEY_SUBJECT, acting_user, create_api_key
from gateway_api.models import ApiKey, KeyKind, Scope
from gateway_api.tasks import PRUNE_IDEMPOTENCY_KEYS_TASK
from payments.models import Client
from pgp_project.operations.beat_schedule import default_jobs
from pgp_project.operations.models import AuditEvent

from ..people import logged_in, staff
from .conftest import Api


@pytest.mark.django_db
def test_the_command_prints_the_secret_once_and_stores_only_its_hash(shop: Client) -> None:
    out = StringIO()
    call_command("create_api_key", "--name", "shop key", "--kind", "client", "--client", shop.external_id, stdout=out)
    secret = out.getvalue().strip()
    key = ApiKey.objects.get(name="shop key")
    assert secret.startswith(key.prefix + ".")
    assert secret not in key.hashed_key
    assert key.kind == KeyKind.CLIENT
    assert key.client_id == shop.pk
    assert key.scopes == [Scope.READ]
    assert Api(secret).get(f"/api/v1/clients/{shop.pk}/").status_code == 200


@pytest.mark.django_db
def test_kinds_and_scopes_are_checked(shop: Client) -> None:
    with pytest.raises(ValidationError):
        create_api_key(name="x", kind=KeyKind.CLIENT)  # a client key names its client
    with pytest.raises(ValidationError):
        create_api_key(name="x", kind=KeyKind.GATEWAY, client=shop)
    with pytest.raises(ValidationError):
        create_api_key(name="x", kind=KeyKind.CLIENT, client=shop, scopes=[Scope.READ, Scope.CLIENTS_WRITE])
    with pytest.raises(ValidationError):
        create_api_key(name="x", kind=KeyKind.GATEWAY, scopes=["admin"])


def test_a_key_without_clients_write_only_reads(make_api: object) -> None:
    reader = make_api(scopes=[Scope.READ])  # type: ignore[operator]
    assert reader.get("/api/v1/clients/").status_code == 200
    assert reader.post("/api/v1/clients/", {}).status_code == 403


def test_the_last_use_is_recorded_at_most_once_a_period(gateway: Api) -> None:
    assert gateway.key is not None
    gateway.get("/api/v1/clients/")
    gateway.key.refresh_from_db()
    first = gateway.key.last_used_at
    assert first is not None
    gateway.get("/api/v1/clients/")
    gateway.key.refresh_from_db()
    assert gateway.key.last_used_at == first
    ApiKey.objects.filter(pk=gateway.key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    gateway.get("/api/v1/clients/")
    gateway.key.refresh_from_db()
    assert gateway.key.last_used_at > first


@pytest.mark.django_db
def test_staff_create_a_key_in_the_admin_and_see_its_secret_once() -> None:
    http = logged_in(staff("keeper", superuser=True))
    answer = http.post(
        "/admin/gateway_api/apikey/add/",
        {"name": "bot", "kind": "gateway", "scopes": ["read", "clients:write"]},
        follow=True,
    )
    assert answer.status_code == 200
    key = ApiKey.objects.get(name="bot")
    shown = [str(message) for message in get_messages(answer.wsgi_request)] or [answer.content.decode()]
    secret = next(word for text in shown for word in text.split() if word.startswith(key.prefix + "."))
    assert key.created_by is not None
    assert key.created_by.username == "keeper"
    assert Api(secret).get("/api/v1/clients/").status_code == 200
    assert secret not in http.get(f"/admin/gateway_api/apikey/{key.pk}/change/").content.decode()
    revoked = http.post(
        f"/admin/gateway_api/apikey/{key.pk}/change/", {"name": "bot", "revoked": "on", "expiry_date_0": ""}
    )
    assert revoked.status_code == 302, revoked.content.decode()[-3000:]
    assert Api(secret).get("/api/v1/clients/").status_code == 401
    events = AuditEvent.objects.filter(subject_type=API_KEY_SUBJECT, subject_id=key.user_id)
    assert [(event.action, event.actor_id) for event in events] == [
        ("created", key.created_by.pk),
        ("revoked", key.created_by.pk),
    ]


def test_pruning_idempotency_keys_is_a_default_periodic_job() -> None:
    assert PRUNE_IDEMPOTENCY_KEYS_TASK in {job.task for job in default_jobs()}


@pytest.mark.django_db
def test_a_change_requested_with_a_key_cannot_be_confirmed_by_the_person_who_minted_the_key() -> None:
    """The two-person rule holds through keys: whoever created the key stands behind its requests."""
    from payments.models import Client as ClientModel
    from pgp_project.operations.pending_changes import SelfConfirmationRefused, confirm_change, request_change
    from tests.factories import ClientFactory
    from tests.people import staff

    client = ClientFactory.create()
    minter = staff("key-minter", "operations.confirm_change")
    other = staff("other-confirmer", "operations.confirm_change")
    key, _ = create_api_key(name="minted", kind="gateway", created_by=minter)
    change = request_change(
        ClientModel,
        client.pk,
        {"wallet_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"},
        user=acting_user(key),
    )
    assert change is not None
    with pytest.raises(SelfConfirmationRefused):
        confirm_change(change.pk, minter)
    assert confirm_change(change.pk, other).status == "applied"
