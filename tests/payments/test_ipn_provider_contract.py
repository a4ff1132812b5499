"""NOWPayments' IPN as NOWPayments documents it, not only as our stand-ins send it.

Sources (cited per test):
- [WEBHOOK] NOWPayments API documentation, https://documenter.getpostman.com/view/7907941/S1a32n38,
  section "Instant payment notifications", "Webhooks Examples: Payments": the payment webhook
  example, with `"parent_payment_id":987654321`, `"order_id":null`, amounts as JSON numbers and
  a nested `fee` whose `depositFee` is the unrounded `0.09853637216235617`.
- [REDEPOSIT] the same documentation, "Repeated Deposits and Wrong-Asset Deposits": "Repeated
  deposits are additional payments sent to the same deposit address ... processed at the current
  exchange rate at the time they are received. They are marked with either the 'Partially paid'
  or 'Finished' status"; "we recommend tracking the 'parent_payment_id' parameter".
- [STATUSES] the same documentation, "Get payment status": the nine statuses (waiting,
  confirming, confirmed, sending, partially_paid, finished, failed, refunded, expired); and
  NOWPayments' help centre, "Payment statuses"
  (https://nowpayments.zendesk.com/hc/en-us/articles/18395434917149-Payment-statuses): "Cancelled -
  additional custom status. You can set partially paid payment as cancelled".
- [3S] NOWPayments' help centre, "IPN and how to setup"
  (https://nowpayments.zendesk.com/hc/en-us/articles/21395546303389-IPN-and-how-to-setup): "The
  endpoint shall respond within 3000 ms".
"""

import json
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client as HttpClient
from django.test import override_settings
from django.utils import timezone

from payments.late_payments import PartialPaymentNotAcceptable, accept_partial_payment
from payments.models import (
    AccumulationStatus,
    Client,
    IpnOutcome,
    Payment,
    PaymentEvent,
    PayoutAccumulation,
    ReferencePrice,
    RoutingStatus,
)
from payments.routing import reroute_held_payment
from pgp_project.settings.ipn_budget import check_ipn_answer_budget

from ..conftest import post_ipn, worker_environment

ORDER = "PGP-7|-1001234567890"  # threshold_client's


def documented_webhook(**overrides: Any) -> dict[str, Any]:
    """[WEBHOOK] NOWPayments' payment webhook example, field for field (its missing comma after
    `payment_extra_ids` restored); then our overrides."""
    body: dict[str, Any] = {
        "payment_id": 123456789,
        "parent_payment_id": 987654321,
        "invoice_id": None,
        "payment_status": "finished",
        "pay_address": "address",
        "payin_extra_id": None,
        "price_amount": 1,
        "price_currency": "usd",
        "pay_amount": 15,
        "actually_paid": 15,
        "actually_paid_at_fiat": 0,
        "pay_currency": "trx",
        "order_id": None,
        "order_description": None,
        "purchase_id": "123456789",
        "outcome_amount": 14.8106,
        "outcome_currency": "trx",
        "payment_extra_ids": None,
        "fee": {"currency": "btc", "depositFee": 0.09853637216235617, "withdrawalFee": 0, "serviceFee": 0},
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not _ABSENT}


_ABSENT = object()


def eth_payment(payment_id: int, **overrides: Any) -> dict[str, Any]:
    """[WEBHOOK]'s shape, paid in ETH to our threshold client, not a repeated deposit."""
    fields: dict[str, Any] = {
        "payment_id": payment_id,
        "parent_payment_id": _ABSENT,
        "price_amount": 19.99,
        "pay_amount": 0.0062,
        "actually_paid": 0.0062,
        "pay_currency": "eth",
        "order_id": ORDER,
        "outcome_amount": 0.00612345,
        "outcome_currency": "eth",
    }
    fields.update(overrides)
    return documented_webhook(**fields)


def as_sent(body: dict[str, Any]) -> bytes:
    """The body as NOWPayments' JavaScript writes it: Decimal amounts as bare JSON numbers, every
    digit kept (json.dumps would refuse them, and a float would lose digits)."""
    numbers: dict[str, str] = {}

    def placeholder(value: Any) -> str:
        if not isinstance(value, Decimal):
            raise TypeError(value)
        numbers[f"__number_{len(numbers)}__"] = str(value)
        return f"__number_{len(numbers) - 1}__"

    text = json.dumps(body, default=placeholder)
    for name, number in numbers.items():
        text = text.replace(f'"{name}"', number)
    return text.encode()


def set_eth_price(usd: str, *, age_seconds: int = 0) -> None:
    ReferencePrice.objects.update_or_create(
        asset_symbol="eth",
        defaults={
            "usd_price": Decimal(usd),
            "source": "test",
            "fetched_at": timezone.now() - timedelta(seconds=age_seconds),
        },
    )


# --- 1. what NOWPayments sends is recorded, never refused -------------------------------------------


@pytest.mark.django_db
def test_the_documented_webhook_example_is_recorded_not_refused(client: HttpClient, threshold_client: Client):
    # [WEBHOOK] verbatim: a repeated deposit (parent 987654321, not recorded here), no order_id.
    response = post_ipn(client, documented_webhook())
    assert response.status_code == 200, response.content
    payment = Payment.objects.get(provider_payment_id=123456789)
    assert payment.order_id == ""
    assert payment.parent_provider_payment_id == 987654321
    assert payment.parent is None
    assert payment.routing_status == RoutingStatus.HELD
    assert "repeated deposit of payment 987654321, which is not recorded here" in payment.hold_reason
    assert payment.outcome_amount == Decimal("14.8106")
    # The body as received: the unrounded fee, and the nulls.
    assert payment.raw_payload["fee"]["depositFee"] == "0.09853637216235617"
    assert payment.raw_payload["order_id"] is None
    assert PayoutAccumulation.objects.count() == 0
    assert PaymentEvent.objects.get().outcome == IpnOutcome.APPLIED


@pytest.mark.django_db
@pytest.mark.parametrize("order_id", [None, _ABSENT, ""])
def test_a_finished_payment_without_an_order_id_is_held_no_order_id(
    client: HttpClient, threshold_client: Client, order_id: Any
):
    # [WEBHOOK]: `"order_id": null` for a payment created without one (its example); absent too.
    response = post_ipn(client, eth_payment(5001, order_id=order_id))
    assert response.status_code == 200, response.content
    payment = Payment.objects.get()
    assert (payment.status, payment.routing_status, payment.hold_reason) == ("finished", "held", "no order_id")
    assert PayoutAccumulation.objects.count() == 0


@pytest.mark.django_db
def test_a_payment_without_an_order_id_is_recorded_from_its_first_status_and_held_when_it_finishes(
    client: HttpClient, threshold_client: Client
):
    # [WEBHOOK] + [STATUSES]: every status is notified; the order_id stays null throughout.
    assert post_ipn(client, eth_payment(5002, order_id=None, payment_status="waiting")).status_code == 200
    assert Payment.objects.get().routing_status == RoutingStatus.NOT_FINISHED
    assert post_ipn(client, eth_payment(5002, order_id=None)).status_code == 200
    payment = Payment.objects.get()
    assert (payment.status, payment.routing_status, payment.hold_reason) == ("finished", "held", "no order_id")


@pytest.mark.django_db
def test_amounts_with_more_decimals_than_stored_are_rounded_down_never_up(client: HttpClient, threshold_client: Client):
    # [WEBHOOK]: amounts are unrounded JavaScript numbers (`0.09853637216235617`). 19.999 rounded
    # to the nearest cent would be 20.00: more than the invoice. Down: 19.99.
    raw_outcome = "0.0061234567890123456789"  # 22 places; ETH is stored with 18
    body = eth_payment(5003, price_amount=Decimal("19.999"), outcome_amount=Decimal(raw_outcome))
    response = post_ipn(client, as_sent(body))
    assert response.status_code == 200, response.content
    payment = Payment.objects.get()
    assert payment.price_amount == Decimal("19.99")
    assert payment.outcome_amount == Decimal("0.006123456789012345")
    row = PayoutAccumulation.objects.get()
    assert row.gross_usd == Decimal("19.99")
    assert row.source_amount == Decimal("0.006123456789012345")
    # Kept as received: the stored body and the event's.
    assert payment.raw_payload["price_amount"] == "19.999"
    assert payment.raw_payload["outcome_amount"] == raw_outcome
    event = PaymentEvent.objects.get()
    assert raw_outcome in event.body
    assert "rounded down to the places stored: price_amount 19.999 -> 19.99" in event.reason
    assert f"outcome_amount {raw_outcome} -> 0.006123456789012345" in event.reason


@pytest.mark.django_db
def test_an_amount_beyond_any_column_is_still_refused(client: HttpClient, threshold_client: Client):
    # Rounding is for places, not size: 10^15 ETH is no payment.
    too_much = Decimal("1000000000000000.0000000000000000001")
    response = post_ipn(client, as_sent(eth_payment(5004, outcome_amount=too_much)))
    assert response.status_code == 422
    assert "outcome_amount" in response.json()["fields"]
    assert Payment.objects.count() == 0


# --- 1. a status NOWPayments does not document -------------------------------------------------------


@pytest.mark.django_db
def test_an_undocumented_status_of_a_routed_payment_is_recorded_and_moves_nothing(
    client: HttpClient, threshold_client: Client
):
    # [STATUSES]: "cancelled" is a custom status an account may set; it is not one of the nine.
    assert post_ipn(client, eth_payment(6001)).status_code == 200
    before = Payment.objects.values().get()
    response = post_ipn(client, eth_payment(6001, payment_status="cancelled"))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "result": "unknown_status",
        "payment_id": 6001,
        "status": "finished",
        "routing": "routed",
    }
    assert Payment.objects.values().get() == before
    assert PayoutAccumulation.objects.get().status == AccumulationStatus.PENDING
    event = PaymentEvent.objects.get(outcome=IpnOutcome.UNKNOWN_STATUS)
    assert event.reported_status == "cancelled"
    assert "not one NOWPayments documents" in event.reason
    assert event.signature_valid
    assert event.body


@pytest.mark.django_db
def test_cancelled_on_a_partially_paid_payment_leaves_it_held_as_partial(client: HttpClient, threshold_client: Client):
    # [STATUSES]: "You can set partially paid payment as cancelled".
    post_ipn(client, eth_payment(6002, payment_status="partially_paid", actually_paid=0.003))
    post_ipn(client, eth_payment(6002, payment_status="cancelled", actually_paid=0.003))
    payment = Payment.objects.get()
    assert (payment.status, payment.routing_status) == ("partially_paid", "held")
    assert payment.hold_reason.startswith("partially paid")


@pytest.mark.django_db
def test_a_payment_first_heard_of_with_an_undocumented_status_is_held_then_moves_on_with_documented_ones(
    client: HttpClient, threshold_client: Client
):
    response = post_ipn(client, eth_payment(6003, payment_status="on_hold"))
    assert response.status_code == 200, response.content
    payment = Payment.objects.get()
    assert (payment.status, payment.routing_status) == ("waiting", "held")
    assert "'on_hold'" in payment.hold_reason
    assert PayoutAccumulation.objects.count() == 0
    # The next documented status moves it on as usual.
    assert post_ipn(client, eth_payment(6003)).json()["result"] == "applied"
    payment.refresh_from_db()
    assert (payment.status, payment.routing_status) == ("finished", "routed")
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1


# --- 2. repeated deposits ---------------------------------------------------------------------------


def repeated_deposit(payment_id: int, parent_id: int, **overrides: Any) -> dict[str, Any]:
    """[WEBHOOK] + [REDEPOSIT]: a new payment naming its parent, its order_id null, and the
    parent's invoice as its price_amount (NOWPayments converts it at the current rate: only its
    outcome says what it is worth)."""
    fields: dict[str, Any] = {
        "payment_id": payment_id,
        "parent_payment_id": parent_id,
        "price_amount": 19.99,
        "pay_amount": 0.0062,
        "actually_paid": 0.002,
        "pay_currency": "eth",
        "order_id": None,
        "outcome_amount": 0.002,
        "outcome_currency": "eth",
    }
    fields.update(overrides)
    return documented_webhook(**fields)


@pytest.mark.django_db
def test_a_repeated_deposit_is_linked_to_its_parent_and_credited_by_its_value_not_the_invoice(
    client: HttpClient, threshold_client: Client
):
    set_eth_price("3000")
    assert post_ipn(client, eth_payment(7001)).status_code == 200
    parent = Payment.objects.get(provider_payment_id=7001)
    response = post_ipn(client, repeated_deposit(7002, parent_id=7001))
    assert response.status_code == 200, response.content
    child = Payment.objects.get(provider_payment_id=7002)
    assert child.parent == parent
    assert child.parent_provider_payment_id == 7001
    assert child.routing_status == RoutingStatus.ROUTED
    assert child.client == threshold_client
    # 0.002 ETH at 3000 USD: 6.00, not the parent's 19.99 invoice a second time.
    assert child.deposit_value_usd == Decimal("6.00")
    assert child.price_to_credit == Decimal("6.00")
    row = PayoutAccumulation.objects.get(payment=child)
    assert (row.gross_usd, row.fee_usd, row.net_usd) == (Decimal("6.00"), Decimal("0.18"), Decimal("5.82"))
    assert row.source_amount == Decimal("0.002")
    assert PayoutAccumulation.objects.get(payment=parent).gross_usd == Decimal("19.99")
    # Delivered again: a duplicate, nothing credited twice.
    assert post_ipn(client, repeated_deposit(7002, parent_id=7001)).json()["result"] == "duplicate"
    assert PayoutAccumulation.objects.count() == 2


@pytest.mark.django_db
def test_a_repeated_deposit_is_valued_down_to_the_cent(client: HttpClient, threshold_client: Client):
    set_eth_price("3000.00")
    post_ipn(client, eth_payment(7101))
    post_ipn(client, repeated_deposit(7102, parent_id=7101, outcome_amount=0.0012345))  # 3.7035 USD
    assert Payment.objects.get(provider_payment_id=7102).deposit_value_usd == Decimal("3.70")


@pytest.mark.django_db
@pytest.mark.parametrize("age_seconds", [None, 3600])
def test_a_repeated_deposit_without_a_fresh_reference_price_is_held_and_routed_by_value_once_there_is_one(
    client: HttpClient, threshold_client: Client, age_seconds: int | None
):
    if age_seconds is not None:
        set_eth_price("3000", age_seconds=age_seconds)  # older than PGP_REFERENCE_PRICE_MAX_AGE_SECONDS
    post_ipn(client, eth_payment(7201))
    assert post_ipn(client, repeated_deposit(7202, parent_id=7201)).status_code == 200
    child = Payment.objects.get(provider_payment_id=7202)
    assert child.routing_status == RoutingStatus.HELD
    assert "no fresh reference price" in child.hold_reason
    assert child.deposit_value_usd is None
    assert not PayoutAccumulation.objects.filter(payment=child).exists()
    set_eth_price("2500")
    reroute_held_payment(child.pk)
    child.refresh_from_db()
    assert child.routing_status == RoutingStatus.ROUTED
    assert PayoutAccumulation.objects.get(payment=child).gross_usd == Decimal("5.00")


@pytest.mark.django_db
def test_a_repeated_deposit_before_its_parent_is_held_then_linked_and_routed_when_the_parent_is_there(
    client: HttpClient, threshold_client: Client
):
    set_eth_price("3000")
    post_ipn(client, repeated_deposit(7302, parent_id=7301))
    child = Payment.objects.get(provider_payment_id=7302)
    assert child.parent is None
    assert child.routing_status == RoutingStatus.HELD
    assert "which is not recorded here" in child.hold_reason
    # The parent arrives (its notifications were late); routing the child again links it.
    post_ipn(client, eth_payment(7301))
    reroute_held_payment(child.pk)
    child.refresh_from_db()
    assert child.parent == Payment.objects.get(provider_payment_id=7301)
    assert child.routing_status == RoutingStatus.ROUTED
    assert PayoutAccumulation.objects.get(payment=child).gross_usd == Decimal("6.00")


@pytest.mark.django_db
def test_a_repeated_deposit_naming_another_order_than_its_parent_is_held(client: HttpClient, threshold_client: Client):
    set_eth_price("3000")
    post_ipn(client, eth_payment(7401))
    post_ipn(client, repeated_deposit(7402, parent_id=7401, order_id="PGP-8|-1009999999999"))
    child = Payment.objects.get(provider_payment_id=7402)
    assert child.routing_status == RoutingStatus.HELD
    assert "but its parent payment 7401 has order_id" in child.hold_reason
    assert not PayoutAccumulation.objects.filter(payment=child).exists()


@pytest.mark.django_db
def test_a_repeated_usdt_deposit_is_worth_what_arrived(client: HttpClient, threshold_client: Client):
    # [REDEPOSIT]: converted to the original payment's asset; USDT needs no ETH price.
    post_ipn(client, eth_payment(7501, outcome_currency="usdterc20", outcome_amount=19.4))
    post_ipn(client, repeated_deposit(7502, parent_id=7501, outcome_currency="usdterc20", outcome_amount=5.1234567))
    child = Payment.objects.get(provider_payment_id=7502)
    assert child.routing_status == RoutingStatus.ROUTED
    row = PayoutAccumulation.objects.get(payment=child)
    assert row.gross_usd == Decimal("5.12")
    assert row.usdt_amount == Decimal("5.123456")


@pytest.mark.django_db
def test_a_partially_paid_repeated_deposit_is_accepted_by_its_value_not_a_share_of_the_invoice(
    client: HttpClient, threshold_client: Client
):
    # [REDEPOSIT]: repeated deposits are marked "Partially paid" or "Finished" (the account's default).
    set_eth_price("3000")
    post_ipn(client, eth_payment(7601))
    post_ipn(client, repeated_deposit(7602, parent_id=7601, payment_status="partially_paid"))
    child = Payment.objects.get(provider_payment_id=7602)
    assert child.routing_status == RoutingStatus.HELD
    # A share of the invoice would be 19.99 * 0.002 / 0.0062 = 6.44 USD; its value is 6.00.
    accept_partial_payment(child.pk, actor=None)
    child.refresh_from_db()
    assert child.routing_status == RoutingStatus.ROUTED
    assert child.accepted_price_amount == Decimal("6.00")
    assert PayoutAccumulation.objects.get(payment=child).gross_usd == Decimal("6.00")


@pytest.mark.django_db
def test_a_partially_paid_repeated_deposit_is_not_accepted_without_a_fresh_price(
    client: HttpClient, threshold_client: Client
):
    post_ipn(client, eth_payment(7701))
    post_ipn(client, repeated_deposit(7702, parent_id=7701, payment_status="partially_paid"))
    child = Payment.objects.get(provider_payment_id=7702)
    with pytest.raises(PartialPaymentNotAcceptable, match="no fresh reference price"):
        accept_partial_payment(child.pk, actor=None)
    child.refresh_from_db()
    assert (child.routing_status, child.accepted_price_amount) == (RoutingStatus.HELD, None)


@pytest.mark.django_db
def test_a_later_notification_never_unlinks_a_repeated_deposit(client: HttpClient, threshold_client: Client):
    set_eth_price("3000")
    post_ipn(client, eth_payment(7801))
    post_ipn(client, repeated_deposit(7802, parent_id=7801, payment_status="confirming"))
    later = repeated_deposit(7802, parent_id=_ABSENT)
    assert post_ipn(client, later).status_code == 200
    child = Payment.objects.get(provider_payment_id=7802)
    assert child.parent_provider_payment_id == 7801
    assert child.parent == Payment.objects.get(provider_payment_id=7801)
    assert child.routing_status == RoutingStatus.ROUTED
    assert child.deposit_value_usd == Decimal("6.00")


# --- 7. answered within NOWPayments' 3 s, lock waits included ---------------------------------------


def _other_session() -> Any:
    db = settings.DATABASES["default"]
    return psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432)


def _post_timed(body: dict[str, Any]) -> tuple[Any, float]:
    started = time.monotonic()
    response = post_ipn(HttpClient(), body)
    return response, time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_an_ipn_blocked_on_a_row_lock_is_answered_503_within_3_seconds(threshold_client: Client):
    # [3S], with the settings as configured (IPN_LOCK_TIMEOUT_MS, IPN_ANSWER_BUDGET_MS).
    assert post_ipn(HttpClient(), eth_payment(8001, payment_status="confirming")).status_code == 200
    blocker = _other_session()
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT id FROM payments_payment WHERE provider_payment_id = 8001 FOR UPDATE")
            response, elapsed = _post_timed(eth_payment(8001))
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}
    assert elapsed < 3.0, elapsed
    assert Payment.objects.get().status == "confirming"
    assert PayoutAccumulation.objects.count() == 0
    # NOWPayments retries: recorded normally.
    assert post_ipn(HttpClient(), eth_payment(8001)).status_code == 200
    assert PayoutAccumulation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@override_settings(IPN_LOCK_TIMEOUT_MS=2500, IPN_ANSWER_BUDGET_MS=600)
def test_the_answer_budget_ends_a_wait_that_the_lock_timeout_would_not(threshold_client: Client):
    """One lock wait may be within lock_timeout and the IPN still late: the budget cancels it."""
    assert post_ipn(HttpClient(), eth_payment(8101, payment_status="confirming")).status_code == 200
    connection.close()  # the next request sets this lock_timeout on a fresh connection
    blocker = _other_session()
    try:
        with blocker.cursor() as cursor:
            cursor.execute("SELECT id FROM payments_payment WHERE provider_payment_id = 8101 FOR UPDATE")
            response, elapsed = _post_timed(eth_payment(8101))
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code == 503
    assert 0.55 < elapsed < 1.5, elapsed
    assert Payment.objects.get().status == "confirming"
    assert not PaymentEvent.objects.filter(reported_status="finished").exists()
    # The connection the cancel hit serves the retry as usual.
    assert post_ipn(HttpClient(), eth_payment(8101)).status_code == 200
    assert Payment.objects.get().status == "finished"


@pytest.mark.django_db(transaction=True)
@override_settings(IPN_LOCK_TIMEOUT_MS=2500, IPN_ANSWER_BUDGET_MS=600)
def test_a_first_notification_waiting_on_a_concurrent_insert_is_answered_within_the_budget(threshold_client: Client):
    """Another session is inserting the same payment and does not commit: our one-statement write
    waits on it; the budget ends that wait, and the IPN writes nothing."""
    connection.close()
    other = _other_session()
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO payments_payment (provider_payment_id, status, order_id, order_description,"
                " price_amount, price_currency, pay_currency, outcome_currency, routing_status, hold_reason,"
                " raw_payload, created_at, updated_at)"
                " VALUES (8201, 'waiting', 'x', '', 1, 'usd', '', '', 'not_finished', '', '{}', now(), now())"
            )
            response, elapsed = _post_timed(eth_payment(8201))
    finally:
        other.rollback()
        other.close()
    assert response.status_code == 503
    assert elapsed < 1.5, elapsed
    assert Payment.objects.count() == 0
    assert post_ipn(HttpClient(), eth_payment(8201)).status_code == 200


def test_the_configured_timeouts_leave_room_under_3_seconds():
    assert settings.IPN_LOCK_TIMEOUT_MS <= settings.IPN_ANSWER_BUDGET_MS < 3000
    check_ipn_answer_budget(1500, 2500)


@pytest.mark.parametrize(
    ("lock_timeout_ms", "budget_ms"), [(3000, 2500), (5000, 2500), (1500, 3000), (2000, 1000), (0, 2500)]
)
def test_settings_refuse_a_timeout_that_does_not_fit_in_3_seconds(lock_timeout_ms: int, budget_ms: int):
    with pytest.raises(ImproperlyConfigured):
        check_ipn_answer_budget(lock_timeout_ms, budget_ms)


def test_settings_refuse_to_load_with_a_lock_timeout_of_3_seconds():
    environment = {**worker_environment(), "IPN_LOCK_TIMEOUT_MS": "3000"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode != 0
    assert "ImproperlyConfigured: IPN_LOCK_TIMEOUT_MS=3000" in loaded.stderr


@pytest.mark.django_db
def test_the_payment_page_shows_a_repeated_deposit_s_parent_and_value(client: HttpClient, threshold_client: Client):
    from django.contrib.auth.models import Permission, User

    set_eth_price("3000")
    post_ipn(client, eth_payment(7901))
    post_ipn(client, repeated_deposit(7902, parent_id=7901))
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="payments", codename="view_payment"))
    http = HttpClient()
    http.force_login(viewer)
    child = Payment.objects.get(provider_payment_id=7902)
    page = http.get(f"/admin/payments/payment/{child.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "7901" in text
    assert "6.00" in text


@pytest.mark.django_db(transaction=True)
def test_the_budget_cancels_a_running_statement_and_starts_none_past_its_deadline():
    from django.db import DatabaseError

    from payments.ipn_deadline import BudgetExceeded, within_answer_budget

    started = time.monotonic()
    with (
        pytest.raises(DatabaseError, match="canceling statement"),
        within_answer_budget(started + 0.3),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(5)")
    assert time.monotonic() - started < 1.0
    # Past the deadline between two statements (where a cancel would find nothing running).
    with within_answer_budget(time.monotonic() + 0.1), connection.cursor() as cursor:
        time.sleep(0.2)
        with pytest.raises(BudgetExceeded):
            cursor.execute("SELECT 1")
    # Disarmed in time: nothing is cancelled later on the same connection.
    with within_answer_budget(time.monotonic() + 0.1), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    time.sleep(0.2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.1)")
