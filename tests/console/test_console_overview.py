"""The operator console, through the admin as a logged-in operator: the
overview (the admin's home page) with money by state, the cached hot wallet, the micro-batch
progress, client balances and the activity chart; and the needs-attention queue with its header
count. Real rows, the real intake path, the local chain; nothing of ours is mocked."""

import json
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.test import Client as HttpClient
from django.utils import timezone

from batching.models import CONVERSION_MACHINE
from console.tasks import refresh_hot_wallet
from evm_chain.node import EvmNode
from payments.models import AccumulationStatus, Client, Payment, RoutingStatus
from payouts.exchange_batches.states import BatchStatus
from pgp_project.money import ETH_PLACES, USDT_PLACES, from_base_units
from pgp_project.money_display import format_amount
from pgp_project.operations.state_machine import transition
from standins.localchain import LocalChain, free_port

from ..conftest import ipn_body, post_ipn
from ..factories import (
    AccumulationFactory,
    BatchConversionFactory,
    HostPaymentFactory,
    PaymentFactory,
    PayoutBatchFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator() -> HttpClient:
    http = HttpClient()
    http.force_login(StaffUserFactory.create(username="console-operator"))
    return http


def text_of(html: str, element_id: str) -> str:
    """The text inside the element with this id (tags dropped, whitespace collapsed)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:td|p|span|strong|div)>', html, re.S)
    assert match, f"no element #{element_id}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start : html.index("</div>", start)]


@pytest.fixture
def rows_in_every_state(threshold_client: Client) -> None:
    """Accumulation rows of the threshold client with known amounts, one state at a time."""
    now = timezone.now()
    for _ in range(2):
        AccumulationFactory.create(client=threshold_client)  # 9.70 USD net, 0.003 ETH, pending
    AccumulationFactory.create(
        client=threshold_client, status=AccumulationStatus.SWAPPING, batch_conversion_id=1, source_amount="0.0041"
    )
    converted = {"usdt_amount": Decimal("12.727503"), "fee_usdt": Decimal("0.381825")}
    AccumulationFactory.create(
        client=threshold_client, status=AccumulationStatus.CONVERTED, credit_usdt=Decimal("12.345678"), **converted
    )
    AccumulationFactory.create(
        client=threshold_client,
        status=AccumulationStatus.IN_PAYOUT,
        payout_batch_id=1,
        usdt_amount=Decimal("5.5"),
        fee_usdt=Decimal("0"),
        credit_usdt=Decimal("5.5"),
    )
    for credit, when in ((Decimal("7.25"), now), (Decimal("2.75"), now - timedelta(days=3))):
        AccumulationFactory.create(
            client=threshold_client,
            status=AccumulationStatus.PAID_OUT,
            payout_batch_id=2,
            usdt_amount=credit,
            fee_usdt=Decimal("0"),
            credit_usdt=credit,
            paid_out_at=when,
        )


def test_overview_shows_money_by_state_with_units(operator: HttpClient, rows_in_every_state: None) -> None:
    response = operator.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="overview-money"' in html
    assert text_of(html, "money-pending").startswith("Pending (awaiting conversion) 19.40 USD net")
    money = section(html, "overview-money")
    for expected in (
        "19.40 USD net",
        "0.006 ETH in 2 payment(s)",
        "0.0041 ETH",
        "12.345678 USDT",
        "5.500000 USDT",
    ):
        assert expected in money, expected
    assert re.search(r'id="money-paid-today".*?7\.250000 USDT', money, re.S)
    assert re.search(r'id="money-paid-week".*?10\.000000 USDT', money, re.S)

    # The micro-batch threshold (20.00 USD by default) and the client's balance, as progress bars.
    assert text_of(html, "micro-batch-text") == "19.40 USD of 20.00 USD (97 %)"
    assert '<progress id="micro-batch-progress" value="19.40" max="20.00">' in html
    clients = section(html, "overview-clients")
    assert "Threshold channel" in clients
    for expected in ("12.345678 USDT", "19.40 USD", "50.00 USD", "24 %"):
        assert expected in clients, expected


def test_overview_draws_its_chart_from_static_files_only(operator: HttpClient, threshold_client: Client) -> None:
    post_ipn(HttpClient(), ipn_body(payment_id=7001))  # 19.99 USD, finished today
    html = operator.get("/admin/").content.decode()
    found = re.search(r'<script id="overview-chart-data" type="application/json">(.*?)</script>', html)
    assert found
    data = json.loads(found.group(1))
    assert len(data["days"]) == 14
    assert data["days"][-1] == timezone.localdate().isoformat()
    assert data["volume_usd"][-1] == "19.99"
    assert data["payments"][-1] == 1
    assert '<canvas id="overview-chart"' in html
    # Chart.js comes from the npm package the project pins, collected as a static file.
    assert '/static/vendor/chartjs/chart.umd.js"' in html
    assert '/static/console/overview.js"' in html
    assert finders.find("vendor/chartjs/chart.umd.js") is not None
    # The CSP allows no inline script or style: every script is a file or inert JSON.
    assert not re.search(r"<script(?![^>]*(src=|application/json))", html)
    assert " style=" not in html


def test_hot_wallet_is_not_yet_known_then_read_by_the_job_and_a_down_node_never_slows_the_page(
    operator: HttpClient, local_chain: LocalChain, monkeypatch
) -> None:
    monkeypatch.setenv("ETH_RPC_URL", local_chain.rpc_url)
    monkeypatch.setenv("HOT_WALLET_PRIVATE_KEY", local_chain.hot_wallet_private_key)
    monkeypatch.setenv("USDT_CONTRACT_ADDRESS", local_chain.usdt_address)

    html = operator.get("/admin/").content.decode()
    assert text_of(html, "hot-wallet-eth-balances") == "not yet known"
    assert text_of(html, "hot-wallet-eth-fee-rate") == "not yet known"
    assert "not yet known" in text_of(html, "hot-wallet-eth-as-of")

    refresh_hot_wallet()  # the periodic job's body, in this process
    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    address = node.w3.eth.account.from_key(local_chain.hot_wallet_private_key).address
    eth = format_amount(from_base_units(node.eth_balance(address), ETH_PLACES), "ETH")
    usdt = format_amount(from_base_units(node.token_balance(local_chain.usdt_address, address), USDT_PLACES), "USDT")
    html = operator.get("/admin/").content.decode()
    assert text_of(html, "hot-wallet-eth-eth") == eth
    assert text_of(html, "hot-wallet-eth-usdt") == usdt
    assert text_of(html, "hot-wallet-eth-fee-rate").endswith(" gwei")
    assert text_of(html, "hot-wallet-eth-as-of").startswith("as of ")
    assert address in html

    # The node goes away: the page answers at once with the last values, and the job says why.
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ETH_RPC_URL", down)
    started = time.monotonic()
    response = operator.get("/admin/")
    assert response.status_code == 200
    assert time.monotonic() - started < 2
    refresh_hot_wallet()
    html = operator.get("/admin/").content.decode()
    assert text_of(html, "hot-wallet-eth-eth") == eth
    assert "EVM node unreachable" in text_of(html, "hot-wallet-eth-error")
    assert down not in html


def test_attention_queue_lists_what_needs_a_person_with_working_actions(
    operator: HttpClient, threshold_client: Client
) -> None:
    # A payment for a client we do not know, through the real intake: held.
    assert post_ipn(HttpClient(), ipn_body(payment_id=7101, order_id="PGP-7|-100999")).status_code == 200
    held = Payment.objects.get(provider_payment_id=7101)
    assert held.routing_status == RoutingStatus.HELD
    awaiting = PayoutBatchFactory.create(
        client=threshold_client, status=BatchStatus.AWAITING_APPROVAL, total_usdt="1500", source_amount="1500"
    )
    conversion = BatchConversionFactory.create()
    assert transition(
        CONVERSION_MACHINE,
        conversion.pk,
        from_status=BatchStatus.CREATED,
        to_status=BatchStatus.FAILED,
        reason="a step failed",
        updates={"review_reason": "exchange refused the pair", "last_error": "HTTP 400 pair_is_inactive"},
    )
    waiting = HostPaymentFactory.create(waiting_for="balance", last_error="hot wallet cannot cover it")

    response = operator.get("/admin/console/attention/")
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<tr class="attention-item" data-kind="([a-z_]+)">(.*?)</tr>', html, re.S)
    by_kind = {kind: body for kind, body in rows}
    assert sorted(by_kind) == [
        "conversion_in_review",
        "host_payment_waiting_for_balance",
        "payment_held",
        "payout_awaiting_approval",
    ]
    assert "unknown client" in by_kind["payment_held"]
    assert "Route held finished payments again" in by_kind["payment_held"]
    assert "above the approval limit 1,000.000000 USDT" in by_kind["payout_awaiting_approval"]
    assert f"/admin/payouts/payoutbatch/{awaiting.pk}/approve/" in by_kind["payout_awaiting_approval"]
    review = by_kind["conversion_in_review"]
    assert "exchange refused the pair" in review
    assert "HTTP 400 pair_is_inactive" in review
    assert "Cancel and release rows" in review
    assert "Top up the hot wallet" in by_kind["host_payment_waiting_for_balance"]
    assert f"/admin/payouts/hostpayment/{waiting.pk}/change/" in by_kind["host_payment_waiting_for_balance"]
    # Each row's age comes from when it entered its state (the conversion: its audit event).
    assert all(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", body) for body in by_kind.values())

    # Every object link and every action link opens.
    links = re.findall(r'class="attention-(?:object|action)[^"]*" href="([^"]+)"', html)
    assert len(links) == 2 * len(rows)
    for link in links:
        assert operator.get(link.replace("&amp;", "&")).status_code == 200, link
    assert f"/admin/payments/payment/?id__exact={held.pk}" in links
    assert f"/admin/batching/batchconversion/?id__exact={conversion.pk}" in links

    # The header of every admin page counts the same items, linked to the queue; so does /health/.
    for page in ("/admin/", "/admin/console/attention/", "/admin/payments/payment/"):
        page_html = operator.get(page).content.decode()
        assert text_of(page_html, "attention-count") == str(len(rows))
        assert re.search(r'id="attention-link" [^>]*href="/admin/console/attention/"', page_html)
    assert operator.get("/health/").json()["checks"]["needs_attention"]["total"] == len(rows)

    # One kind at a time.
    only = operator.get("/admin/console/attention/?kind=payment_held").content.decode()
    assert re.findall(r'data-kind="([a-z_]+)"', only) == ["payment_held"]


def test_queue_is_empty_and_says_so(operator: HttpClient) -> None:
    PaymentFactory.create()  # a routed-nothing, finished payment: nothing to do
    html = operator.get("/admin/console/attention/").content.decode()
    assert 'id="attention-queue"' in html
    assert 'id="attention-empty"' in html
    assert text_of(html, "attention-count") == "0"


def test_queue_and_header_are_for_operators_only() -> None:
    anonymous = HttpClient()
    assert anonymous.get("/admin/console/attention/").status_code == 302
    login_page = anonymous.get("/admin/login/").content.decode()
    assert 'id="attention-count"' not in login_page
