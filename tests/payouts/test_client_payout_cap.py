"""The client payout check under the exchange's maximum: a threshold payout is capped (the
client's oldest rows that fit), the rest goes in the next payout, and a row alone over the
maximum waits for a person, alerted. The range is asked through the ChangeNOW adapter from the
sandbox, whose /v2/exchange/range ("Exchange range", ChangeNOW API v2,
https://documenter.getpostman.com/view/8180765/SVfTPnM8) answers maxAmount 25 USDT here."""

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client as HttpClient

from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.client_payouts import check_client_payouts
from payouts.models import PayoutBatch
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import CHANGENOW_TEST_API_KEY, ipn_body, post_ipn
from ..factories import ClientFactory
from ..flows import inject, reset_sandbox, route_exchanges_to

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def changenow_with_a_maximum(sandbox: SandboxChangeNow, settings, monkeypatch) -> Iterator[None]:
    route_exchanges_to(settings, "changenow", urls={"changenow": sandbox.base_url})
    monkeypatch.setenv("CHANGENOW_API_KEY", CHANGENOW_TEST_API_KEY)
    reset_sandbox(sandbox)
    inject(sandbox, {"max_amount_usd": "25"})  # USDT at 1 USD: 25 USDT
    yield
    reset_sandbox(sandbox)


@pytest.fixture
def eth_client(db: None) -> Client:
    return ClientFactory.create(
        external_id="-100861",
        payout_threshold_usd=Decimal("5.00"),
        payout_currency="eth",
        payout_network="eth",
        wallet_address="0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    )


def credit(client: Client, amounts: list[str], first_id: int) -> list[int]:
    """USDT payments through the IPN: each credits the client 97 % of it at once."""
    for offset, amount in enumerate(amounts):
        body = ipn_body(
            payment_id=first_id + offset,
            order_id=f"PGP-5|{client.external_id}",
            price_amount=amount,
            outcome_amount=amount,
            outcome_currency="usdterc20",
        )
        assert post_ipn(HttpClient(), body).status_code == 200
    return [
        PayoutAccumulation.objects.get(payment__provider_payment_id=first_id + offset).pk
        for offset in range(len(amounts))
    ]


def claimed_by(batch_id: int) -> list[int]:
    return sorted(PayoutAccumulation.objects.filter(payout_batch_id=batch_id).values_list("pk", flat=True))


def test_a_payout_over_the_maximum_takes_the_oldest_rows_that_fit_and_the_rest_follows(eth_client: Client) -> None:
    rows = credit(eth_client, ["10.00"] * 4, first_id=400000)  # 4 x 9.70 = 38.80 USDT, over 25

    (first,) = check_client_payouts()
    batch = PayoutBatch.objects.get(pk=first)
    assert claimed_by(first) == rows[:2]  # 19.40: a third row would make 29.10
    assert (batch.row_count, batch.total_usdt, batch.source_amount) == (2, Decimal("19.40"), Decimal("19.40"))

    (second,) = check_client_payouts()  # the rest, 19.40 USDT, is over the 5 USD threshold
    assert claimed_by(second) == rows[2:]
    assert check_client_payouts() == []


def test_a_row_alone_over_the_maximum_is_never_claimed_and_is_alerted(
    eth_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    oversize, *fitting = credit(eth_client, ["30.00", "10.00"], first_id=410000)  # 29.10 alone over 25

    with caplog.at_level("ERROR"):
        (batch_id,) = check_client_payouts()
    assert claimed_by(batch_id) == fitting
    assert PayoutAccumulation.objects.get(pk=oversize).status == AccumulationStatus.CONVERTED
    lines = [record.getMessage() for record in caplog.records if "ALERT payout_waiting" in record.getMessage()]
    assert lines == ["ALERT payout_waiting client=-100861 rows=1 each_over_maximum_usdt=25"]

    with caplog.at_level("ERROR"):
        assert check_client_payouts() == []  # only the oversize row is left: nothing to claim
    assert PayoutAccumulation.objects.get(pk=oversize).payout_batch_id is None
