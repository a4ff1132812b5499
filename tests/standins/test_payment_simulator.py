"""The payment simulator speaks NOWPayments' documented contract, and the intake accepts it.

The bodies it sends (standins/payment_simulator.py, which cites the documentation behind each
field) are posted here through the real view, as the demo posts them over HTTP.
"""

import json
from decimal import Decimal

from django.conf import settings
from django.test import Client as HttpClient

from integrations.nowpayments_signature import matching_form, sign
from payments.models import Client, Payment, PaymentEvent
from standins.payment_simulator import STATUS_SEQUENCE, encode_ipn, new_payment, simulated_ipn

from ..conftest import IPN_URL


def deliver(raw: bytes) -> int:
    signature = sign(raw, settings.NOWPAYMENTS_IPN_SECRET)
    return (
        HttpClient()
        .post(IPN_URL, data=raw, content_type="application/json", HTTP_X_NOWPAYMENTS_SIG=signature)
        .status_code
    )


def test_every_status_of_a_simulated_payment_is_accepted_signed_in_the_primary_form(threshold_client: Client) -> None:
    payment = new_payment(880001, threshold_client.external_id, Decimal("12.34"), Decimal("3000"), parent=None)
    for status in STATUS_SEQUENCE:
        raw = encode_ipn(simulated_ipn(payment, status))
        body = json.loads(raw)
        # As documented: amounts are JSON numbers, a nested fee object, nulls.
        assert isinstance(body["price_amount"], float)
        assert isinstance(body["pay_amount"], float)
        assert set(body["fee"]) == {"currency", "depositFee", "withdrawalFee", "serviceFee"}
        assert body["invoice_id"] is None
        assert body["parent_payment_id"] is None
        assert isinstance(body["purchase_id"], str)
        assert matching_form(raw, sign(raw, "s"), "s") == "sortObject"
        assert deliver(raw) == 200, status
    stored = Payment.objects.get(provider_payment_id=880001)
    assert stored.status == "finished"
    assert stored.price_amount == Decimal("12.34")
    assert stored.outcome_amount == Decimal("0.00409276")  # 12.34 / 3000 = 0.00411333, less 0.5 %
    assert stored.accumulation.client == threshold_client
    assert list(
        PaymentEvent.objects.filter(payment=stored).order_by("id").values_list("reported_status", flat=True)
    ) == list(STATUS_SEQUENCE)


def test_a_re_deposit_goes_to_its_parent_address_as_a_payment_of_its_own(threshold_client: Client) -> None:
    parent = new_payment(880002, threshold_client.external_id, Decimal("10.00"), Decimal("3000"), parent=None)
    child = new_payment(880003, "ignored", Decimal("5.00"), Decimal("2500"), parent=parent)
    body = json.loads(encode_ipn(simulated_ipn(child, "finished")))
    assert body["parent_payment_id"] == 880002
    assert body["payment_id"] == 880003
    assert body["pay_address"] == parent.pay_address
    assert body["order_id"].endswith(f"|{threshold_client.external_id}")
    assert body["pay_amount"] == 0.002  # priced at the re-deposit's own rate
