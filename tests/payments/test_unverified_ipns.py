"""Bodies refused for their signature alone that look genuine are kept, bounded, for replay.

NOWPayments documents its signed text four ways (integrations/nowpayments_signature.py); should it
sign in one we do not reproduce (or should our IPN secret be out of date), genuine payments get
401. Their bodies are kept for PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS so that they can be replayed
once that is fixed, but only so many and only shapes a real notification has: anyone can send
them. Everything goes through the real view.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client as HttpClient
from django.test import override_settings
from django.utils import timezone

from integrations.nowpayments_signature import sign
from payments.models import Client, IpnOutcome, Payment, PaymentEvent, UnverifiedIpnBody
from payments.tasks import prune_rejected_ipn_events

from ..conftest import IPN_URL, ipn_body

WRONG = "ab" * 64  # the shape of a hex HMAC-SHA512, not ours


def post(body: bytes, signature: str | None) -> int:
    headers = {"HTTP_X_NOWPAYMENTS_SIG": signature} if signature is not None else {}
    return HttpClient().post(IPN_URL, data=body, content_type="application/json", **headers).status_code


def raw(**overrides: object) -> bytes:
    return json.dumps(ipn_body(**overrides)).encode()


def test_a_genuine_looking_body_is_kept_whole_beside_a_refusal_that_claims_nothing(db: None) -> None:
    body = raw(fee={"currency": "eth", "depositFee": 0.00001, "withdrawalFee": 0, "serviceFee": 0})
    assert post(body, WRONG.upper()) == 401
    event = PaymentEvent.objects.get()
    assert event.outcome == IpnOutcome.REJECTED_SIGNATURE
    # The refusal record itself is unchanged: a hash and a size, no body, no payment id.
    assert (event.body, event.provider_payment_id, event.reported_status) == ("", None, "")
    kept = UnverifiedIpnBody.objects.get()
    assert kept.event == event
    assert kept.body.encode() == body
    assert kept.signature == WRONG


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        pytest.param(raw(), "ab" * 63, id="signature-too-short"),
        pytest.param(raw(), "zz" * 64, id="signature-not-hex"),
        pytest.param(raw(), None, id="no-signature"),
        pytest.param(raw(order_description="x" * 16 * 1024), WRONG, id="over-16-KiB"),
        pytest.param(b"[1, 2, 3]", WRONG, id="not-an-object"),
        pytest.param(raw(payment_id="5077125051"), WRONG, id="payment-id-a-string"),
        pytest.param(raw(payment_id=True), WRONG, id="payment-id-a-boolean"),
        pytest.param(raw(payment_id=0), WRONG, id="payment-id-zero"),
        pytest.param(raw(payment_id=2**63), WRONG, id="payment-id-beyond-bigint"),
        pytest.param(raw(payment_status=9), WRONG, id="status-a-number"),
        pytest.param(raw(payment_status="x" * 41), WRONG, id="status-too-long"),
        pytest.param(json.dumps({"payment_id": 1}).encode(), WRONG, id="no-status"),
    ],
)
def test_only_genuine_looking_shapes_are_kept(db: None, body: bytes, signature: str | None) -> None:
    assert post(body, signature) == 401
    assert PaymentEvent.objects.filter(outcome=IpnOutcome.REJECTED_SIGNATURE).count() == 1
    assert not UnverifiedIpnBody.objects.exists()


@override_settings(PGP_UNVERIFIED_IPN_BODIES_PER_DAY=3, PGP_UNVERIFIED_IPN_BODIES_MAX=5)
def test_so_many_a_day_and_so_many_in_all(db: None) -> None:
    for payment_id in range(1, 6):
        assert post(raw(payment_id=payment_id), WRONG) == 401
    assert sorted(json.loads(k.body)["payment_id"] for k in UnverifiedIpnBody.objects.all()) == [1, 2, 3]
    UnverifiedIpnBody.objects.update(kept_at=timezone.now() - timedelta(days=2))  # a new day
    for payment_id in range(6, 10):
        assert post(raw(payment_id=payment_id), WRONG) == 401
    # Two more fit under the total bound (5), whatever the day's allowance.
    assert sorted(json.loads(k.body)["payment_id"] for k in UnverifiedIpnBody.objects.all()) == [1, 2, 3, 6, 7]
    # Every request was refused and recorded alike, kept body or not.
    assert PaymentEvent.objects.filter(outcome=IpnOutcome.REJECTED_SIGNATURE).count() == 9


def test_the_pruning_job_drops_old_bodies_then_the_oldest_beyond_the_bound(db: None) -> None:
    for payment_id in range(1, 5):
        assert post(raw(payment_id=payment_id), WRONG) == 401
    now = timezone.now()
    for age_days, payment_id in [(8, 1), (3, 2), (2, 3), (1, 4)]:
        UnverifiedIpnBody.objects.filter(body__contains=f'"payment_id": {payment_id},').update(
            kept_at=now - timedelta(days=age_days)
        )
    with override_settings(PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS=7, PGP_UNVERIFIED_IPN_BODIES_MAX=2):
        prune_rejected_ipn_events()
    assert sorted(json.loads(k.body)["payment_id"] for k in UnverifiedIpnBody.objects.all()) == [3, 4]
    # The refusal records stay for their own, longer retention.
    assert PaymentEvent.objects.count() == 4
    prune_rejected_ipn_events()  # safe to run twice
    assert UnverifiedIpnBody.objects.count() == 2


def test_a_kept_body_is_replayed_once_it_verifies(threshold_client: Client) -> None:
    """The realistic case: NOWPayments signs with a secret we did not have yet (rotated in their
    dashboard, not yet here). Once the secret is fixed, the kept body verifies and is recorded."""
    body = raw(payment_id=424242)
    assert post(body, sign(body, "the-rotated-secret")) == 401
    event = PaymentEvent.objects.get()
    with pytest.raises(CommandError, match="still matches no documented form"):
        call_command("replay_ipn", str(event.pk), "--apply")
    assert not Payment.objects.exists()
    with override_settings(NOWPAYMENTS_IPN_SECRET="the-rotated-secret"):
        out = StringIO()
        call_command("replay_ipn", str(event.pk), stdout=out)
        assert "matches the sortObject form" in out.getvalue()
        assert not Payment.objects.exists()  # without --apply, nothing is recorded
        call_command("replay_ipn", str(event.pk), "--apply", stdout=out)
        assert "HTTP 200" in out.getvalue()
    payment = Payment.objects.get(provider_payment_id=424242)
    assert payment.status == "finished"
    assert payment.events.get().signature_valid


def test_replay_refuses_an_event_without_a_kept_body(db: None) -> None:
    assert post(b"[1]", WRONG) == 401
    event = PaymentEvent.objects.get()
    with pytest.raises(CommandError, match="has no kept body"):
        call_command("replay_ipn", str(event.pk))
    with pytest.raises(CommandError, match="no IPN event"):
        call_command("replay_ipn", str(event.pk + 1000))
