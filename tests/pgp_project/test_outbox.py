"""The outbox: an event is written in the transaction of the change that causes it (rolled back
with it, committed with it), numbered per subject 1, 2, 3... even under concurrency, and emitted
where the payments, payouts and client changes happen."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client as HttpClient

from payments.models import Client, Payment
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PAYOUT_MACHINE
from pgp_project.operations.pending_changes import confirm_change, request_change
from pgp_project.operations.state_machine import transition
from pgp_project.outbox.events import OutsideTransaction, record_event
from pgp_project.outbox.models import OutboxEvent

from ..conftest import ipn_body, post_ipn, run_at_the_same_moment
from ..factories import PayoutBatchFactory
from ..people import staff


class Boom(Exception):
    pass


@pytest.mark.django_db
def test_a_rolled_back_transition_leaves_no_event_and_a_committed_one_leaves_one() -> None:
    batch = PayoutBatchFactory.create()
    fail = {
        "from_status": BatchStatus.CREATED,
        "to_status": BatchStatus.FAILED,
        "updates": {"review_reason": "no route"},
    }

    def fail_then_die() -> None:
        with transaction.atomic():
            assert transition(PAYOUT_MACHINE, batch.pk, **fail)
            assert OutboxEvent.objects.filter(type="payout.failed").count() == 1  # written, in the transaction
            raise Boom  # the worker dies before commit

    with pytest.raises(Boom):
        fail_then_die()
    assert not OutboxEvent.objects.exists()
    with transaction.atomic():
        transition(PAYOUT_MACHINE, batch.pk, **fail)
    event = OutboxEvent.objects.get()
    assert (event.type, event.subject_type, event.subject_id, event.sequence) == (
        "payout.failed",
        "payout",
        batch.pk,
        1,
    )
    assert event.client_id == batch.client_id
    assert event.event_id.startswith("evt_")
    assert event.payload["source_amount"] == "19.400000000000000000"  # money as exact strings
    assert event.payload["reason"] == "no route"


@pytest.mark.django_db(transaction=True)
def test_an_event_outside_a_transaction_is_refused() -> None:
    with pytest.raises(OutsideTransaction):
        record_event("payout.created", ("payout", 1), {})
    with pytest.raises(TypeError), transaction.atomic():
        record_event("payout.created", ("payout", 1), {"amount": 1.5})
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_sequence_per_subject_has_no_gap_and_no_twin_under_concurrency() -> None:
    def one() -> int:
        with transaction.atomic():
            return record_event("payout.created", ("payout", 42), {"n": "1"})

    run_at_the_same_moment(one, times=8)
    run_at_the_same_moment(one, times=8)
    with transaction.atomic():
        record_event("payout.created", ("payout", 43), {})
    sequences = sorted(OutboxEvent.objects.filter(subject_id=42).values_list("sequence", flat=True))
    assert sequences == list(range(1, 17))
    assert OutboxEvent.objects.get(subject_id=43).sequence == 1


@pytest.mark.django_db(transaction=True)
def test_payments_emit_received_held_and_refunded(threshold_client: Client) -> None:
    http = HttpClient()
    post_ipn(http, ipn_body(payment_id=1))  # finished, routed: one statement
    post_ipn(http, ipn_body(payment_id=2, order_id="PGP-7|nobody"))  # unknown client: held
    post_ipn(http, ipn_body(payment_id=3, payment_status="waiting"))  # nothing yet
    post_ipn(http, ipn_body(payment_id=3, payment_status="finished"))  # the locked path
    post_ipn(http, ipn_body(payment_id=1, payment_status="refunded"))
    post_ipn(http, ipn_body(payment_id=1, payment_status="refunded"))  # a duplicate: nothing new

    def events(provider_id: int) -> list[tuple[str, int]]:
        payment = Payment.objects.get(provider_payment_id=provider_id)
        return list(
            OutboxEvent.objects.filter(subject_type="payment", subject_id=payment.pk)
            .order_by("sequence")
            .values_list("type", "sequence")
        )

    assert events(1) == [("payment.received", 1), ("payment.refunded", 2)]
    assert events(2) == [("payment.held", 1)]
    assert events(3) == [("payment.received", 1)]
    received = OutboxEvent.objects.filter(type="payment.received").first()
    assert received is not None
    assert received.client_id == threshold_client.pk
    assert received.payload["price_amount"] == "19.99"
    assert received.payload["client"] == threshold_client.external_id
    assert OutboxEvent.objects.get(type="payment.held").client_id is None


@pytest.mark.django_db
def test_a_confirmed_client_change_is_an_event_a_rejected_or_pending_one_is_not(threshold_client: Client) -> None:
    alice = staff("alice", "payments.change_fees_and_thresholds")
    change = request_change(Client, threshold_client.pk, {"payout_threshold_usd": "75"}, user=alice)
    assert change is not None
    assert not OutboxEvent.objects.exists()
    confirm_change(change.pk, staff("bob", "operations.confirm_change"))
    event = OutboxEvent.objects.get()
    assert (event.type, event.subject_type, event.subject_id) == (
        "client.change_confirmed",
        "client",
        threshold_client.pk,
    )
    assert event.payload["changes"] == {"payout_threshold_usd": "75.00"}
    assert event.client_id == threshold_client.pk
    assert Decimal(event.payload["changes"]["payout_threshold_usd"]) == Decimal("75")
