"""Late and partial payments are money too, through the front door: signed IPNs
as NOWPayments sends them, and the operator's action in the admin."""

from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from batching.conversion import check_threshold
from payments.late_payments import accept_partial_payment
from payments.models import AccumulationStatus, Client, Payment, PaymentEvent, PayoutAccumulation, RoutingStatus
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.selectors import get_runtime_settings

from ..conftest import ipn_body, post_ipn
from ..factories import ClientFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def deliver(*statuses: str, **fields: object) -> list[str]:
    """Post one payment's IPNs in order; the intake result of each."""
    http = HttpClient()
    results = []
    for status in statuses:
        answer = post_ipn(http, ipn_body(payment_status=status, **fields))
        assert answer.status_code == 200, answer.content
        results.append(answer.json()["result"])
    return results


def test_a_late_finish_after_expiry_is_routed_with_an_alert(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR"):
        assert deliver("waiting", "expired", "finished") == ["applied", "applied", "applied"]
    payment = Payment.objects.get()
    assert payment.status == "finished"
    assert payment.routing_status == RoutingStatus.ROUTED
    assert PayoutAccumulation.objects.get(payment=payment).status == AccumulationStatus.PENDING
    assert "a late payment" in PaymentEvent.objects.order_by("-id")[0].reason
    assert f"ALERT late_payment provider_payment_id={payment.provider_payment_id} finished_after=expired" in caplog.text


def test_a_late_finish_after_failure_opens_the_instant_payout(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    threshold_client.payout_strategy = "instant"
    threshold_client.save()
    with caplog.at_level("ERROR"):
        deliver("waiting", "failed", "finished", payment_id=777, outcome_amount="0.01")
    assert PayoutBatch.objects.get(payment__provider_payment_id=777).status == BatchStatus.CREATED
    assert "ALERT late_payment provider_payment_id=777 finished_after=failed" in caplog.text


def test_a_partial_payment_is_held_until_an_operator_accepts_what_was_paid(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    partial = {"price_amount": "20.00", "pay_amount": "0.0062", "actually_paid": "0.0031", "outcome_amount": "0.003"}
    with caplog.at_level("ERROR"):
        assert deliver("waiting", "partially_paid", **partial) == ["applied", "applied"]
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert "partially paid: 0.0031 of 0.0062" in payment.hold_reason
    assert not PayoutAccumulation.objects.exists()
    assert f"ALERT partial_payment provider_payment_id={payment.provider_payment_id}" in caplog.text

    operator = StaffUserFactory.create(username="day-shift")
    http = HttpClient()
    http.force_login(operator)
    changelist = reverse("admin:payments_payment_changelist")
    http.post(changelist, {"action": "accept_partial", "_selected_action": [payment.pk]})
    payment.refresh_from_db()
    assert payment.routing_status == RoutingStatus.ROUTED
    assert payment.accepted_price_amount == Decimal("10.00")  # half of the invoice was paid
    row = PayoutAccumulation.objects.get(payment=payment)
    assert (row.gross_usd, row.net_usd, row.source_amount) == (Decimal("10.00"), Decimal("9.70"), Decimal("0.003"))
    event = AuditEvent.objects.get(subject_type="payment", subject_id=payment.pk, action="accept_partial")
    assert event.actor == operator
    # A second click finds nothing to accept and changes nothing.
    page = http.post(changelist, {"action": "accept_partial", "_selected_action": [payment.pk]}, follow=True)
    assert b"is not a held partial payment" in page.content
    assert PayoutAccumulation.objects.count() == 1


def test_a_refund_after_finish_holds_a_row_that_has_not_left_in_a_batch(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR"):
        assert deliver("finished", "refunded") == ["applied", "applied"]
    row = PayoutAccumulation.objects.get()
    assert row.status == AccumulationStatus.HELD
    assert "refunded" in row.hold_reason
    assert "is held: no payout had claimed it" in PaymentEvent.objects.order_by("-id")[0].reason
    assert "ALERT payment_refunded" in caplog.text


def test_a_refund_after_finish_of_a_credited_usdt_row_holds_it(threshold_client: Client) -> None:
    deliver("finished", "refunded", outcome_currency="usdterc20", outcome_amount="19.99")
    assert PayoutAccumulation.objects.get().status == AccumulationStatus.HELD


def test_a_refund_after_its_value_left_in_a_batch_sends_the_payment_to_review(
    threshold_client: Client, flow_environment: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    runtime = get_runtime_settings()
    runtime.micro_batch_threshold_usd = Decimal("1.00")
    runtime.save()
    deliver("finished", outcome_amount="0.004")
    conversion_id = check_threshold().conversion_id  # the row is now swapping in a conversion
    with caplog.at_level("ERROR"):
        deliver("refunded", outcome_amount="0.004")
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert f"while its ETH is in conversion #{conversion_id}" in payment.hold_reason
    assert PayoutAccumulation.objects.get().status == AccumulationStatus.SWAPPING  # untouched
    assert "ALERT payment_refunded" in caplog.text


def test_a_refund_after_finish_stops_an_instant_payout_that_sent_nothing(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    threshold_client.payout_strategy = "instant"
    threshold_client.save()
    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("5")
    runtime.save()
    deliver("finished", payment_id=888, outcome_amount="0.01")  # 19.99 USD: waits for approval
    with caplog.at_level("ERROR"):
        deliver("refunded", payment_id=888, outcome_amount="0.01")
    payout = PayoutBatch.objects.get(payment__provider_payment_id=888)
    assert payout.status == BatchStatus.FAILED
    assert "refunded by NOWPayments; nothing was sent" in payout.review_reason
    assert "stopped before anything was sent" in caplog.text


def test_payments_of_other_clients_are_untouched(threshold_client: Client) -> None:
    other = ClientFactory.create(external_id="-100999")
    deliver("finished", payment_id=901, order_id=f"PGP-1|{other.external_id}")
    deliver("finished", "refunded", payment_id=902)
    statuses = dict(PayoutAccumulation.objects.values_list("payment__provider_payment_id", "status"))
    assert statuses == {901: AccumulationStatus.PENDING, 902: AccumulationStatus.HELD}


def test_a_refund_after_an_accepted_partial_payment_holds_its_row(threshold_client: Client) -> None:
    partial = {"price_amount": "20.00", "pay_amount": "0.0062", "actually_paid": "0.0031", "outcome_amount": "0.003"}
    deliver("partially_paid", **partial)
    accept_partial_payment(Payment.objects.get().pk, actor=None)
    assert deliver("refunded", **partial) == ["applied"]
    assert PayoutAccumulation.objects.get().status == AccumulationStatus.HELD


def test_a_payment_finished_after_its_partial_acceptance_is_held_not_credited_twice(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    partial = {"price_amount": "20.00", "pay_amount": "0.0062", "actually_paid": "0.0031", "outcome_amount": "0.003"}
    deliver("partially_paid", **partial)
    accept_partial_payment(Payment.objects.get().pk, actor=None)
    with caplog.at_level("ERROR"):
        assert deliver("finished", **{**partial, "actually_paid": "0.0062", "outcome_amount": "0.006"}) == ["applied"]
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert "the rest (10.00 USD) is not credited" in payment.hold_reason
    assert PayoutAccumulation.objects.count() == 1
    assert "ALERT finished_after_partial_acceptance" in caplog.text


def test_a_refunded_payment_whose_eth_was_converted_is_never_paid_out(
    threshold_client: Client, flow_environment: dict[str, str]
) -> None:
    threshold_client.payout_threshold_usd = Decimal("1.00")
    threshold_client.save()
    deliver("finished", payment_id=951, outcome_amount="0.004")
    deliver("finished", payment_id=952, outcome_amount="0.004")
    # Both converted by a conversion (as its distribution would leave them) ...
    PayoutAccumulation.objects.update(
        status=AccumulationStatus.CONVERTED,
        batch_conversion_id=1,
        usdt_amount=Decimal("11.000000"),
        fee_usdt=Decimal("0.330000"),
        credit_usdt=Decimal("10.670000"),
    )
    # ... then NOWPayments refunds one of them: that row is held, the other is paid out alone.
    deliver("refunded", payment_id=951, outcome_amount="0.004")
    refunded = PayoutAccumulation.objects.get(payment__provider_payment_id=951)
    assert refunded.status == AccumulationStatus.HELD
    (batch_id,) = check_client_payouts()
    assert PayoutBatch.objects.get(pk=batch_id).total_usdt == Decimal("10.670000")
    assert PayoutAccumulation.objects.get(payment__provider_payment_id=951).payout_batch_id is None


def test_a_refunded_payment_converted_after_the_refund_is_never_claimed(
    threshold_client: Client, flow_environment: dict[str, str]
) -> None:
    threshold_client.payout_threshold_usd = Decimal("1.00")
    threshold_client.save()
    runtime = get_runtime_settings()
    runtime.micro_batch_threshold_usd = Decimal("1.00")
    runtime.save()
    deliver("finished", payment_id=961, outcome_amount="0.004")
    check_threshold()  # in a conversion when the refund comes
    deliver("refunded", payment_id=961, outcome_amount="0.004")
    # The conversion completes and credits it: still no payout may claim its credit.
    PayoutAccumulation.objects.update(
        status=AccumulationStatus.CONVERTED,
        usdt_amount=Decimal("11.000000"),
        fee_usdt=Decimal("0.330000"),
        credit_usdt=Decimal("10.670000"),
    )
    assert check_client_payouts() == []
