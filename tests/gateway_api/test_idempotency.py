"""Idempotency-Key as Stripe has it: the same key and body replay the stored answer; another
body is 422; concurrent twins never both run; answers are pruned after 24 h."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from gateway_api.idempotency import prune_idempotency_records
from gateway_api.models import IdempotencyRecord, IdempotencyStatus
from payments.models import Client
from pgp_project.operations.models import PendingChange

from .conftest import Api, MakeApi
from .test_views import NEW_CLIENT


def test_the_same_key_and_body_get_the_stored_answer_without_running_again(gateway: Api) -> None:
    first = gateway.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "create-1"})
    again = gateway.post("/api/v1/clients/", dict(reversed(NEW_CLIENT.items())), **{"Idempotency-Key": "create-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Client.objects.count() == 1
    assert PendingChange.objects.count() == 1


def test_the_same_key_with_another_body_is_422_and_changes_nothing(gateway: Api) -> None:
    gateway.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "create-2"})
    other = gateway.post("/api/v1/clients/", {**NEW_CLIENT, "name": "other"}, **{"Idempotency-Key": "create-2"})
    assert other.status_code == 422
    assert Client.objects.get().name == NEW_CLIENT["name"]


def test_a_refusal_is_stored_too_and_keys_are_per_api_key(gateway: Api, make_api: MakeApi) -> None:
    bad = {**NEW_CLIENT, "wallet_address": "nope"}
    assert gateway.post("/api/v1/clients/", bad, **{"Idempotency-Key": "k"}).status_code == 400
    replay = gateway.post("/api/v1/clients/", bad, **{"Idempotency-Key": "k"})
    assert replay.status_code == 400
    assert replay["Idempotent-Replayed"] == "true"
    # Another key's same Idempotency-Key is its own.
    assert make_api().post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "k"}).status_code == 201


def test_answers_are_pruned_after_24_hours(gateway: Api) -> None:
    gateway.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "old"})
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert prune_idempotency_records() == 1
    assert not IdempotencyRecord.objects.exists()


def test_a_request_that_died_midway_runs_on_its_retry(gateway: Api) -> None:
    """A claim left unanswered and unlocked (its request died: its work rolled back) is taken over
    by the retry, which runs it."""
    gateway.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "died"})
    Client.objects.all().delete()
    PendingChange.objects.all().delete()
    IdempotencyRecord.objects.update(status=IdempotencyStatus.STARTED, response_status=None, response_body="")
    retry = gateway.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "died"})
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert Client.objects.count() == 1
    assert IdempotencyRecord.objects.get().status == IdempotencyStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_never_both_run(make_api: MakeApi) -> None:
    gateway = make_api()
    answers: list[int] = []
    start = threading.Barrier(4)

    def post() -> None:
        try:
            start.wait()
            api = Api(gateway.secret, gateway.key)
            answers.append(api.post("/api/v1/clients/", NEW_CLIENT, **{"Idempotency-Key": "race"}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Client.objects.count() == 1
    assert sorted(set(answers)) in ([201], [201, 409])
    assert IdempotencyRecord.objects.get().status == IdempotencyStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_of_one_channel_without_a_key_create_it_once(make_api: MakeApi) -> None:
    gateway = make_api()
    answers: list[int] = []
    start = threading.Barrier(4)

    def post() -> None:
        try:
            start.wait()
            answers.append(Api(gateway.secret, gateway.key).post("/api/v1/clients/", NEW_CLIENT).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Client.objects.count() == 1
    assert sorted(answers) == [201, 400, 400, 400]
