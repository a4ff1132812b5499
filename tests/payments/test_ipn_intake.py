"""POST /webhooks/nowpayments/: what is stored and answered for each kind of IPN."""

import json
import time
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from django.test import override_settings

from payments.models import (
    AccumulationStatus,
    Client,
    IpnOutcome,
    Payment,
    PaymentEvent,
    PayoutAccumulation,
    PayoutStrategy,
    RoutingStatus,
)
from pgp_project.operations.selectors import get_runtime_settings

from ..conftest import IPN_URL, ipn_body, post_ipn, run_at_the_same_moment

pytestmark = pytest.mark.django_db


def nothing_but_events_changed() -> None:
    assert Payment.objects.count() == 0
    assert PayoutAccumulation.objects.count() == 0


def test_finished_eth_payment_creates_one_pending_row_with_fee_snapshot(client: HttpClient, threshold_client: Client):
    response = post_ipn(client, ipn_body())
    assert response.status_code == 200, response.content
    assert response.json()["result"] == "applied"
    payment = Payment.objects.get()
    assert payment.provider_payment_id == 5077125051
    assert payment.status == "finished"
    assert payment.routing_status == RoutingStatus.ROUTED
    assert payment.client == threshold_client
    assert payment.user_id == 7
    row = PayoutAccumulation.objects.get()
    assert row.payment == payment
    assert row.client == threshold_client
    assert row.status == AccumulationStatus.PENDING
    assert row.gross_usd == Decimal("19.99")
    assert row.fee_percent == Decimal("3.00")
    assert row.fee_usd == Decimal("0.60")  # 0.5997 rounded half-up
    assert row.net_usd == Decimal("19.39")
    assert row.source_amount == Decimal("0.00612345")
    assert row.wallet_address == threshold_client.wallet_address
    event = PaymentEvent.objects.get()
    assert event.outcome == IpnOutcome.APPLIED
    assert event.signature_valid
    assert event.payment == payment


def test_fee_override_and_runtime_default_are_snapshotted(client: HttpClient, threshold_client: Client):
    runtime = get_runtime_settings()
    runtime.default_fee_percent = Decimal("15.00")
    runtime.save()
    post_ipn(client, ipn_body(payment_id=1, price_amount=10))
    threshold_client.fee_percent_override = Decimal("1.50")
    threshold_client.save()
    post_ipn(client, ipn_body(payment_id=2, price_amount=10))
    runtime.default_fee_percent = Decimal("3.00")
    runtime.save()
    first, second = PayoutAccumulation.objects.order_by("payment__provider_payment_id")
    assert (first.fee_percent, first.fee_usd, first.net_usd) == (Decimal("15.00"), Decimal("1.50"), Decimal("8.50"))
    assert (second.fee_percent, second.fee_usd, second.net_usd) == (Decimal("1.50"), Decimal("0.15"), Decimal("9.85"))


def test_usdt_on_host_network_is_credited_at_once(client: HttpClient, threshold_client: Client):
    response = post_ipn(client, ipn_body(outcome_currency="usdterc20", outcome_amount=19.4))
    assert response.status_code == 200
    row = PayoutAccumulation.objects.get()
    assert row.status == AccumulationStatus.CONVERTED
    assert row.usdt_amount == Decimal("19.400000")
    assert row.fee_usdt == Decimal("0.582000")
    assert row.credit_usdt == Decimal("18.818000")
    assert row.fee_usdt + row.credit_usdt == row.usdt_amount


def test_other_outcome_currency_is_held_in_the_admin_not_dropped(client: HttpClient, threshold_client: Client):
    response = post_ipn(client, ipn_body(outcome_currency="trx", outcome_amount=100))
    assert response.status_code == 200
    row = PayoutAccumulation.objects.get()
    assert row.status == AccumulationStatus.HELD
    assert "trx" in row.hold_reason


@pytest.mark.parametrize(
    ("order_id", "reason_part"),
    [
        ("not-a-pgp-order", "is not PGP-"),
        ("PGP-7|-100999", "unknown client"),
        ("PGP-abc|-1001234567890", "is not PGP-"),
    ],
)
def test_genuine_but_unroutable_payment_is_recorded_and_held(
    client: HttpClient, threshold_client: Client, order_id: str, reason_part: str
):
    response = post_ipn(client, ipn_body(order_id=order_id))
    assert response.status_code == 200
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert reason_part in payment.hold_reason
    assert PayoutAccumulation.objects.count() == 0


def test_inactive_client_holds_payment_and_reroute_after_reactivation(client: HttpClient, threshold_client: Client):
    from payments.routing import reroute_held_payment

    threshold_client.is_active = False
    threshold_client.save()
    post_ipn(client, ipn_body())
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert "inactive" in payment.hold_reason
    assert PayoutAccumulation.objects.count() == 0
    threshold_client.is_active = True
    threshold_client.save()
    reroute_held_payment(payment.pk)
    reroute_held_payment(payment.pk)  # twice is harmless
    payment.refresh_from_db()
    assert payment.routing_status == RoutingStatus.ROUTED
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1


def test_instant_client_payment_creates_one_instant_payout_with_the_fee_deducted(
    client: HttpClient, threshold_client: Client
):
    from payouts.models import PayoutBatch

    threshold_client.payout_strategy = PayoutStrategy.INSTANT
    threshold_client.save()
    assert post_ipn(client, ipn_body()).status_code == 200
    assert post_ipn(client, ipn_body()).status_code == 200  # redelivered: still one payout
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.ROUTED
    payout = PayoutBatch.objects.get()
    assert payout.kind == "instant"
    assert payout.payment == payment
    assert payout.status == "created"
    assert payout.fee_amount == Decimal("0.0001837035")  # 3 % of 0.00612345, exact at 18 dp
    assert payout.source_amount + payout.fee_amount == Decimal("0.00612345")
    assert PayoutAccumulation.objects.count() == 0


def test_large_instant_payment_waits_for_approval(client: HttpClient, threshold_client: Client):
    from payouts.models import PayoutBatch

    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("15")
    runtime.save()
    threshold_client.payout_strategy = PayoutStrategy.INSTANT
    threshold_client.save()
    post_ipn(client, ipn_body(payment_id=1, price_amount="19.99"))
    post_ipn(client, ipn_body(payment_id=2, price_amount="9.99"))
    statuses = dict(PayoutBatch.objects.values_list("payment__provider_payment_id", "status"))
    assert statuses == {1: "awaiting_approval", 2: "created"}


def test_instant_client_paid_in_another_currency_is_held(client: HttpClient, threshold_client: Client):
    threshold_client.payout_strategy = PayoutStrategy.INSTANT
    threshold_client.save()
    assert post_ipn(client, ipn_body(outcome_currency="trx", outcome_amount=100)).status_code == 200
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert "trx" in payment.hold_reason


def test_status_moves_forward_only_and_routes_once(client: HttpClient, threshold_client: Client):
    for status in ("waiting", "confirming", "finished"):
        assert post_ipn(client, ipn_body(payment_status=status)).status_code == 200
    stale = post_ipn(client, ipn_body(payment_status="confirming"))
    assert stale.status_code == 200
    assert stale.json()["result"] == "stale"
    late_fail = post_ipn(client, ipn_body(payment_status="failed"))
    assert late_fail.json()["result"] == "stale"
    payment = Payment.objects.get()
    assert payment.status == "finished"
    assert PayoutAccumulation.objects.count() == 1
    outcomes = list(PaymentEvent.objects.order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["applied", "applied", "applied", "stale", "stale"]


def test_duplicate_ipn_answers_200_and_creates_nothing_new(client: HttpClient, threshold_client: Client):
    first = post_ipn(client, ipn_body())
    second = post_ipn(client, ipn_body())
    assert first.status_code == second.status_code == 200
    assert second.json()["result"] == "duplicate"
    assert Payment.objects.count() == 1
    assert PayoutAccumulation.objects.count() == 1
    assert PaymentEvent.objects.filter(outcome=IpnOutcome.DUPLICATE).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_ipns_make_one_payment_and_one_row(threshold_client: Client):
    statuses = run_at_the_same_moment(lambda: post_ipn(HttpClient(), ipn_body()).status_code, times=4)
    assert statuses == [200, 200, 200, 200]
    assert Payment.objects.count() == 1
    assert PayoutAccumulation.objects.count() == 1
    assert sorted(PaymentEvent.objects.values_list("outcome", flat=True)) == ["applied"] + ["duplicate"] * 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_notifications_to_an_instant_client_open_one_payout(threshold_client: Client):
    # The instant path writes the payment and opens its payout in one transaction; the others
    # find the payment and take the locked path.
    from payouts.models import PayoutBatch

    threshold_client.payout_strategy = PayoutStrategy.INSTANT
    threshold_client.save()
    statuses = run_at_the_same_moment(lambda: post_ipn(HttpClient(), ipn_body()).status_code, times=4)
    assert statuses == [200, 200, 200, 200]
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.ROUTED
    assert PayoutBatch.objects.get().payment == payment
    assert sorted(PaymentEvent.objects.values_list("outcome", flat=True)) == ["applied"] + ["duplicate"] * 3


def test_a_redelivered_first_notification_is_alerted_and_logged_once(
    client: HttpClient, threshold_client: Client, caplog: pytest.LogCaptureFixture
):
    # A first notification is planned before the write finds out whether the payment exists:
    # its hold log line and alert are said only once it is written.
    partial = {"payment_status": "partially_paid", "actually_paid": "0.0031"}
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert post_ipn(client, ipn_body(payment_id=41, **partial)).status_code == 200
            assert post_ipn(client, ipn_body(payment_id=42, order_id="PGP-7|-100unknown")).status_code == 200
    assert caplog.text.count("ALERT partial_payment provider_payment_id=41") == 1
    assert caplog.text.count("payment held for review: provider_payment_id=41") == 1
    assert caplog.text.count("payment held for review: provider_payment_id=42") == 1
    assert Payment.objects.get(provider_payment_id=42).hold_reason == "unknown client '-100unknown'"


def test_missing_and_wrong_signature_get_401_and_change_nothing(client: HttpClient, threshold_client: Client):
    assert post_ipn(client, ipn_body(), signature=None).status_code == 401
    wrong = post_ipn(client, ipn_body(), signature="ab" * 64)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_signature"
    nothing_but_events_changed()
    assert list(PaymentEvent.objects.values_list("outcome", flat=True)) == ["rejected_signature"] * 2


def test_signature_from_another_secret_is_rejected(client: HttpClient, threshold_client: Client):
    from integrations.nowpayments_signature import sign

    raw = json.dumps(ipn_body()).encode()
    assert post_ipn(client, raw, signature=sign(raw, "not-our-secret")).status_code == 401
    nothing_but_events_changed()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b'{"payment_id": 1,', "malformed_json"),
        (b"\xff\xfe", "invalid_encoding"),
        (b'{"a": NaN}', "malformed_json"),
    ],
    ids=["garbage", "empty", "truncated", "binary", "nan"],
)
def test_malformed_json_gets_400(client: HttpClient, raw: bytes, error: str):
    response = post_ipn(client, raw, signature="ab" * 64)
    assert response.status_code == 400
    assert response.json()["error"] == error
    nothing_but_events_changed()
    assert PaymentEvent.objects.count() == 1


# --- what a refusal record may claim -------------------------------------------------------------


def refusal() -> PaymentEvent:
    event = PaymentEvent.objects.get()
    assert event.outcome.startswith("rejected")
    assert event.payment is None
    return event


@pytest.mark.parametrize(
    "signature", ["ab" * 64, "wrong-secret", None], ids=["garbage-signature", "another-secret", "no-signature"]
)
def test_an_unsigned_body_s_refusal_claims_no_payment_id_or_status(client: HttpClient, signature: str | None):
    from integrations.nowpayments_signature import sign

    raw = json.dumps(ipn_body(payment_id=4242, payment_status="finished")).encode()
    if signature == "wrong-secret":
        signature = sign(raw, "not-our-secret")
    assert post_ipn(client, raw, signature=signature).status_code == 401
    event = refusal()
    assert event.provider_payment_id is None
    assert event.reported_status == ""
    assert not event.signature_valid
    assert event.body == ""
    if signature is None:
        assert event.reason == "missing x-nowpayments-sig header"
    else:  # what it claimed is kept, labelled as a claim, in the reason only
        assert event.reason == "signature does not match; unverified claim: payment_id 4242, payment_status finished"
    # Operators searching the refusals by payment id do not find the forged one as that payment's.
    assert not PaymentEvent.objects.filter(provider_payment_id=4242).exists()


def test_an_unsigned_claim_keeps_no_free_text_of_the_sender(client: HttpClient):
    raw = json.dumps(ipn_body(payment_id=True, payment_status="<b>finished</b> =HYPERLINK()")).encode()
    assert post_ipn(client, raw, signature="ab" * 64).status_code == 401
    event = refusal()
    assert (event.provider_payment_id, event.reported_status) == (None, "")
    assert event.reason == "signature does not match"


def test_a_signed_body_s_refusal_carries_its_payment_id_and_status(client: HttpClient):
    response = post_ipn(client, ipn_body(payment_id=4343, payment_status="finished", price_amount="lots"))
    assert response.status_code == 422
    event = refusal()
    assert event.signature_valid
    assert (event.provider_payment_id, event.reported_status) == (4343, "finished")
    assert event.body  # signed: kept for operators to read


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"payment_id": "abc"}, "payment_id"),
        ({"payment_id": True}, "payment_id"),
        ({"payment_id": -5}, "payment_id"),
        ({"payment_id": 1.5}, "payment_id"),
        ({"payment_status": 5}, "payment_status"),
        ({"price_amount": -1}, "price_amount"),
        ({"price_amount": "lots"}, "price_amount"),
        ({"price_amount": True}, "price_amount"),
        ({"price_amount": 10**12}, "price_amount"),
        ({"outcome_amount": -0.1}, "outcome_amount"),
        ({"outcome_amount": {"x": 1}}, "outcome_amount"),
        ({"outcome_amount": 1e15}, "outcome_amount"),
        ({"outcome_amount": 0}, "outcome_amount"),
        ({"outcome_amount": None}, "outcome_amount"),
        ({"outcome_currency": ""}, "outcome_currency"),
        ({"order_id": 12}, "order_id"),
        ({"order_id": ["PGP-1|x"]}, "order_id"),
        ({"price_currency": None}, "price_currency"),
    ],
)
def test_wrong_types_missing_fields_and_absurd_amounts_get_422(
    client: HttpClient, threshold_client: Client, overrides: dict, field: str
):
    response = post_ipn(client, ipn_body(**overrides))
    assert response.status_code == 422, response.content
    assert field in response.json()["fields"]
    nothing_but_events_changed()
    event = PaymentEvent.objects.get()
    assert event.outcome == IpnOutcome.REJECTED_PAYLOAD
    assert event.signature_valid


def test_missing_required_field_gets_422(client: HttpClient):
    body = ipn_body()
    del body["payment_id"]
    response = post_ipn(client, body)
    assert response.status_code == 422
    assert "payment_id" in response.json()["fields"]
    nothing_but_events_changed()


def test_signed_non_object_body_gets_422(client: HttpClient):
    response = post_ipn(client, b"[1, 2, 3]")
    assert response.status_code == 422
    nothing_but_events_changed()


@override_settings(IPN_MAX_BODY_BYTES=2048)
def test_oversized_body_is_refused_unread(client: HttpClient):
    response = post_ipn(client, ipn_body(order_description="x" * 5000))
    assert response.status_code == 413
    nothing_but_events_changed()
    event = PaymentEvent.objects.get()
    assert event.outcome == IpnOutcome.REJECTED_TOO_LARGE
    assert event.body == ""


def test_only_post_is_allowed(client: HttpClient):
    assert client.get(IPN_URL).status_code == 405
    assert PaymentEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@override_settings(IPN_LOCK_TIMEOUT_MS=300)
def test_database_failure_answers_503_and_records_nothing(threshold_client: Client):
    """A real failure: another session holds an exclusive lock on the payments table, so the
    intake transaction times out. NOWPayments must get a 5xx (it retries), never a 200."""
    db = settings.DATABASES["default"]
    blocker = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    try:
        with blocker.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Payment._meta.db_table} IN ACCESS EXCLUSIVE MODE")
            response = post_ipn(HttpClient(), ipn_body())
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}
    assert Payment.objects.count() == 0
    assert PayoutAccumulation.objects.count() == 0
    # The retry after the outage is recorded normally.
    assert post_ipn(HttpClient(), ipn_body()).status_code == 200
    assert PayoutAccumulation.objects.count() == 1


def test_a_user_id_no_bigint_holds_is_held_not_refused_forever(client: HttpClient, threshold_client: Client):
    # It used to fail the write on every retry (a 503 forever): the money is real, so it is held.
    too_large = ipn_body(payment_id=51, order_id="PGP-9999999999999999999|-1001234567890")
    assert post_ipn(client, too_large).status_code == 200
    payment = Payment.objects.get(provider_payment_id=51)
    assert payment.routing_status == RoutingStatus.HELD
    assert "is not PGP-{user_id}|{client_id}" in payment.hold_reason
    assert PayoutAccumulation.objects.count() == 0
    largest = ipn_body(payment_id=52, order_id=f"PGP-{2**63 - 1}|-1001234567890")
    assert post_ipn(client, largest).status_code == 200
    assert Payment.objects.get(provider_payment_id=52).user_id == 2**63 - 1


@pytest.mark.django_db(transaction=True)
def test_a_first_notification_waiting_on_one_that_rolls_back_writes_the_payment_itself(threshold_client: Client):
    """Another session is inserting the same payment and has not committed: our one-statement write
    waits on its ON CONFLICT. When that session rolls back, ours writes the payment, its row and
    its event; nothing is lost and nothing is written twice."""
    import threading

    db = settings.DATABASES["default"]
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    answers: list[int] = []

    def deliver() -> None:
        try:
            answers.append(post_ipn(HttpClient(), ipn_body(payment_id=61)).status_code)
        finally:
            connection.close()

    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_payment (provider_payment_id, status, order_id, order_description,"
                " price_amount, price_currency, pay_currency, outcome_currency, routing_status, hold_reason,"
                " raw_payload, created_at, updated_at)"
                " VALUES (61, 'waiting', 'x', '', 1, 'usd', '', '', 'not_finished', '', '{}', now(), now())"
            )
            sender = threading.Thread(target=deliver)
            sender.start()
            deadline = time.monotonic() + 5
            while not waiting_on_a_lock(cursor) and time.monotonic() < deadline:  # our write waits
                time.sleep(0.02)
            assert sender.is_alive(), answers
        other.rollback()
        sender.join(10)
    finally:
        other.close()
    assert answers == [200]
    payment = Payment.objects.get(provider_payment_id=61)
    assert payment.status == "finished"
    assert payment.routing_status == RoutingStatus.ROUTED
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1
    assert list(PaymentEvent.objects.values_list("outcome", "reason")) == [("applied", "first notification")]


def waiting_on_a_lock(cursor: Any) -> bool:
    # Statistics are a snapshot per transaction: clear it to see the other session now.
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    return cursor.fetchone() is not None
