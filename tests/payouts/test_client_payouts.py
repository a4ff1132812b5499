"""Client payouts end to end: a real worker, PostgreSQL, anvil and the sandbox ChangeNOW, on Redis and
again on RabbitMQ (every test of the module runs on both brokers, workers included).

Rows are credited through the real intake path with USDT-on-Ethereum payments (credited at once,
no conversion needed), so each test starts from converted balances.
"""

from datetime import datetime
from decimal import Decimal

import pytest
import requests
from django.db.models import Sum
from django.test import Client as HttpClient
from django.urls import reverse
from eth_account import Account
from web3 import Web3

from payments.ipn_payload import MAX_PRICE_USD
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.alerts import HOT_WALLET_INSUFFICIENT
from payouts.client_payouts import PAYOUT_FLOW, check_client_payouts
from payouts.exchange_batches.operator import cancel_unfunded
from payouts.exchange_batches.states import BatchStatus
from payouts.exchange_batches.steps import advance
from payouts.host_payments.machine import advance_host_payment
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch
from pgp_project.money import to_base_units
from pgp_project.operations.models import AlertThrottle
from pgp_project.operations.selectors import get_runtime_settings
from standins.erc20 import ERC20_ABI
from standins.localchain import ANVIL_DEV_PRIVATE_KEYS, LocalChain, sign_and_send, wait_for_success
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import ipn_body, on_both_brokers, post_ipn, run_at_the_same_moment, wait_until
from ..factories import ClientFactory, StaffUserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), *on_both_brokers()]
FINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED, BatchStatus.REFUNDED)
ETH_WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil account 3


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/reset", timeout=5).raise_for_status()


def make_client(external_id: str, threshold: str, *, strategy: str = "threshold", **overrides: str) -> Client:
    """A client paid in ETH on Ethereum unless told otherwise."""
    fields = {"payout_currency": "eth", "payout_network": "eth", "wallet_address": ETH_WALLET, **overrides}
    return ClientFactory.create(
        external_id=external_id, payout_strategy=strategy, payout_threshold_usd=Decimal(threshold), **fields
    )


def host_payment_of(batch: PayoutBatch) -> HostPayment:
    return HostPayment.objects.get(pk=PayoutBatch.objects.get(pk=batch.pk).host_payment_id)


def credit_usdt(client: Client, amounts: list[str], first_id: int) -> None:
    http = HttpClient()
    for offset, amount in enumerate(amounts):
        body = ipn_body(
            payment_id=first_id + offset,
            order_id=f"PGP-5|{client.external_id}",
            price_amount=amount,
            outcome_amount=amount,
            outcome_currency="usdterc20",
        )
        assert post_ipn(http, body).status_code == 200


def wait_final(batch_id: int, timeout: float = 120) -> PayoutBatch:
    return wait_until(lambda: PayoutBatch.objects.filter(pk=batch_id, status__in=FINAL).first(), timeout=timeout)


def assert_conserved(client: Client) -> None:
    """credit == paid out + in payout + converted unclaimed, per client."""
    rows = PayoutAccumulation.objects.filter(client=client)
    total = rows.aggregate(total=Sum("credit_usdt"))["total"] or Decimal(0)
    parts = sum(
        (rows.filter(status=status).aggregate(t=Sum("credit_usdt"))["t"] or Decimal(0))
        for status in (AccumulationStatus.PAID_OUT, AccumulationStatus.IN_PAYOUT, AccumulationStatus.CONVERTED)
    )
    assert total == parts


def usdt_sent_on_chain(local_chain: LocalChain, tx_hash: str) -> tuple[str, str, int]:
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    token = w3.eth.contract(address=local_chain.usdt_address, abi=ERC20_ABI)
    (event,) = token.events.Transfer().process_receipt(receipt)
    return event["args"]["from"], event["args"]["to"], event["args"]["value"]


def test_client_above_threshold_is_paid_out_and_client_below_waits(
    celery_worker_process, local_chain: LocalChain
) -> None:
    above = make_client("-100201", "20.00")
    below = make_client("-100202", "1000.00")
    credit_usdt(above, ["12.00", "9.50", "8.25"], first_id=20000)
    credit_usdt(below, ["15.00"], first_id=20100)
    claimed_credit = PayoutAccumulation.objects.filter(client=above).aggregate(t=Sum("credit_usdt"))["t"]

    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    assert batch.client == above
    assert batch.total_usdt == claimed_credit
    assert batch.row_count == 3
    assert batch.payout_amount
    assert batch.payout_tx_hash
    rows = PayoutAccumulation.objects.filter(client=above)
    assert all(
        r.status == AccumulationStatus.PAID_OUT and r.paid_out_at and r.payout_batch_id == batch.pk for r in rows
    )
    assert PayoutAccumulation.objects.get(client=below).status == AccumulationStatus.CONVERTED
    assert not PayoutBatch.objects.filter(client=below).exists()
    for client in (above, below):
        assert_conserved(client)

    # The USDT that left the hot wallet on chain is exactly the rows' credit.
    host_payment = host_payment_of(batch)
    sender, receiver, value = usdt_sent_on_chain(local_chain, host_payment.tx_hash)
    assert sender == local_chain.hot_wallet_address
    assert receiver == Web3.to_checksum_address(batch.payin_address)
    assert value == to_base_units(claimed_credit, 6)
    # The client got ETH on chain from ChangeNOW (the sandbox's treasury).
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    payout_tx = w3.eth.get_transaction(batch.payout_tx_hash)
    assert payout_tx["to"] == ETH_WALLET
    assert payout_tx["value"] == to_base_units(batch.payout_amount, 18)

    # Each chain step again after success: nothing new, nothing sent twice.
    nonce = w3.eth.get_transaction_count(local_chain.hot_wallet_address)
    assert advance(PAYOUT_FLOW, batch.pk).status == BatchStatus.COMPLETED
    assert advance_host_payment(host_payment.pk).status == HostPaymentStatus.CONFIRMED
    assert check_client_payouts() == []
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address) == nonce
    assert PayoutBatch.objects.count() == 1


def test_payout_above_the_approval_limit_waits_for_a_staff_decision(celery_worker_process) -> None:
    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("10")
    runtime.save()
    approved_client = make_client("-100301", "5.00")
    rejected_client = make_client("-100302", "5.00")
    credit_usdt(approved_client, ["30.00"], first_id=30000)
    credit_usdt(rejected_client, ["31.00"], first_id=30100)
    batch_ids = check_client_payouts()
    assert len(batch_ids) == 2
    batches = {b.client_id: b for b in PayoutBatch.objects.all()}
    assert all(b.status == BatchStatus.AWAITING_APPROVAL and b.exchange_id is None for b in batches.values())

    staff = StaffUserFactory(username="treasurer")
    http = HttpClient()
    http.force_login(staff)
    to_approve, to_reject = batches[approved_client.pk], batches[rejected_client.pk]
    confirm_page = http.get(reverse("admin:payouts_payoutbatch_approve", args=[to_approve.pk]))
    assert confirm_page.status_code == 200
    assert b"Send this payout?" in confirm_page.content
    assert PayoutBatch.objects.get(pk=to_approve.pk).status == BatchStatus.AWAITING_APPROVAL  # GET changes nothing
    assert http.post(reverse("admin:payouts_payoutbatch_approve", args=[to_approve.pk])).status_code == 302
    assert http.post(reverse("admin:payouts_payoutbatch_reject", args=[to_reject.pk])).status_code == 302

    done = wait_final(to_approve.pk)
    assert done.status == BatchStatus.COMPLETED
    assert done.approved_by == staff
    assert done.approved_at
    rejected = PayoutBatch.objects.get(pk=to_reject.pk)
    assert rejected.status == BatchStatus.CANCELLED
    assert rejected.rejected_by == staff
    row = PayoutAccumulation.objects.get(client=rejected_client)
    assert row.status == AccumulationStatus.CONVERTED
    assert row.payout_batch_id is None
    page = http.get(reverse("admin:payouts_payoutbatch_change", args=[done.pk]))
    assert b"approved by treasurer" in page.content
    client_page = http.get(reverse("admin:payments_client_change", args=[approved_client.pk]))
    assert b"paid out 29.100000 USDT" in client_page.content


def test_instant_payment_is_exchanged_and_paid_on_its_own(celery_worker_process, local_chain: LocalChain) -> None:
    instant = make_client("-100401", "0.00", strategy="instant", payout_currency="usdc")
    body = ipn_body(payment_id=40000, order_id="PGP-9|-100401", price_amount="30.00", outcome_amount="0.01")
    assert post_ipn(HttpClient(), body).status_code == 200
    batch = PayoutBatch.objects.get(client=instant)
    assert batch.kind == "instant"
    assert batch.fee_amount == Decimal("0.0003")
    batch = wait_final(batch.pk)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    host_payment = host_payment_of(batch)
    sent = Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_transaction(host_payment.tx_hash)
    assert sent["value"] == to_base_units(Decimal("0.0097"), 18)
    assert batch.payout_amount > 0
    assert batch.payout_tx_hash


def test_invalid_client_address_goes_to_review_and_nothing_is_sent(celery_worker_process) -> None:
    client = make_client("-100501", "5.00", payout_currency="trx", payout_network="trx", wallet_address="Tinvalid0000")
    credit_usdt(client, ["10.00"], first_id=50000)
    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.FAILED
    assert "rejects the wallet address" in batch.review_reason
    assert batch.exchange_id is None
    assert batch.host_payment_id is None
    assert not HostPayment.objects.exists()
    assert PayoutAccumulation.objects.get(client=client).status == AccumulationStatus.IN_PAYOUT  # held
    assert cancel_unfunded(PAYOUT_FLOW, batch_id, reason="wallet fixed").status == BatchStatus.CANCELLED
    assert PayoutAccumulation.objects.get(client=client).status == AccumulationStatus.CONVERTED


def test_credit_under_the_exchange_minimum_waits_without_error(celery_worker_process) -> None:
    client = make_client("-100601", "1.00")
    credit_usdt(client, ["2.00"], first_id=60000)  # the sandbox's minimum is 5 USD
    assert check_client_payouts() == []
    assert PayoutAccumulation.objects.get(client=client).status == AccumulationStatus.CONVERTED


def test_concurrent_payout_checks_open_one_batch_per_client(celery_worker_process) -> None:
    clients = [make_client(f"-10070{i}", "5.00") for i in range(3)]
    for index, client in enumerate(clients):
        credit_usdt(client, ["6.00", "7.00"], first_id=70000 + 10 * index)
    results = run_at_the_same_moment(check_client_payouts)
    assert sorted(len(r) for r in results) in ([0, 3], [1, 2], [3, 0])  # however the lock fell
    assert sum(len(r) for r in results) == 3
    for client in clients:
        (batch,) = PayoutBatch.objects.filter(client=client)
        assert batch.row_count == 2
        assert batch.total_usdt == PayoutAccumulation.objects.filter(client=client).aggregate(t=Sum("credit_usdt"))["t"]
    for batch in PayoutBatch.objects.all():
        assert wait_final(batch.pk).status == BatchStatus.COMPLETED


def test_short_hot_wallet_waits_then_pays_once_funded(
    celery_worker_process, local_chain: LocalChain, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("100000000")
    runtime.save()
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    token = w3.eth.contract(address=local_chain.usdt_address, abi=ERC20_ABI)
    hot_balance = token.functions.balanceOf(local_chain.hot_wallet_address).call()
    # A client credit (97 % of the payments after the 3 % fee) bigger than the hot wallet holds.
    big = (Decimal(hot_balance) / 10**6 / Decimal("0.97") + Decimal("1000")).quantize(Decimal("0.01"))
    client = make_client("-100801", "5.00")
    # In payments under the IPN's price cap: the chain is shared by the Redis and RabbitMQ runs,
    # and the first run's top-up below makes the second one's credit bigger.
    count = int(big // (MAX_PRICE_USD * Decimal("0.9"))) + 2
    for index in range(count):
        credit_usdt(client, [str((big / count).quantize(Decimal("0.01")))], first_id=80000 + index)
    (batch_id,) = check_client_payouts()
    host_payment = wait_until(
        lambda: HostPayment.objects.filter(
            pk__in=PayoutBatch.objects.filter(pk=batch_id).values("host_payment_id")
        ).first(),
        timeout=60,
    )
    wait_until(lambda: balance_alerted_at(host_payment.pk) is not None, timeout=60)
    first_alert = balance_alerted_at(host_payment.pk)
    assert PayoutBatch.objects.get(pk=batch_id).status == BatchStatus.FUNDING  # waiting, not failed
    assert HostPayment.objects.get(pk=host_payment.pk).status == HostPaymentStatus.CREATED

    # Top the hot wallet up from the treasury; the waiting payment goes out on its own.
    treasury = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[9])
    top_up = token.functions.transfer(local_chain.hot_wallet_address, to_base_units(Decimal("2000000"), 6))
    tx = top_up.build_transaction(
        {"from": treasury.address, "nonce": w3.eth.get_transaction_count(treasury.address, "pending"), "gas": 100_000}
    )
    wait_for_success(w3, sign_and_send(w3, treasury, tx))
    batch = wait_final(batch_id, timeout=180)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    assert balance_alerted_at(host_payment.pk) == first_alert  # alerted once
    assert_conserved(client)


def balance_alerted_at(host_payment_id: int) -> datetime | None:
    """When the wait for hot-wallet balance was last alerted about this payment (its throttle)."""
    throttle = AlertThrottle.objects.filter(
        name=HOT_WALLET_INSUFFICIENT.name, subject_type="host_payment", subject_id=str(host_payment_id)
    )
    return throttle.values_list("last_sent_at", flat=True).first()


def test_usdt_erc20_client_is_paid_by_a_direct_transfer_without_an_exchange(
    celery_worker_process, local_chain: LocalChain, sandbox: SandboxChangeNow
) -> None:
    before = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"]
    client = make_client("-100901", "5.00", payout_currency="usdt", payout_network="eth")
    credit_usdt(client, ["7.00", "8.00"], first_id=90000)
    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    assert batch.payout_amount == batch.total_usdt
    sender, receiver, value = usdt_sent_on_chain(local_chain, batch.payout_tx_hash)
    assert (sender, receiver) == (local_chain.hot_wallet_address, ETH_WALLET)
    assert value == to_base_units(batch.total_usdt, 6)
    assert requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"] == before
    assert_conserved(client)


def test_usdt_on_tron_client_is_validated_with_the_network_ticker_and_paid(celery_worker_process) -> None:
    client = make_client(
        "-101001",
        "5.00",
        payout_currency="usdt",
        payout_network="trx",
        wallet_address="TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
    )
    credit_usdt(client, ["9.00"], first_id=100000)
    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.COMPLETED, batch.review_reason
    assert batch.payout_amount > 0
    assert batch.payout_tx_hash


def test_a_memo_network_payout_sends_the_destination_tag_as_extra_id(celery_worker_process, sandbox) -> None:
    """XRP to an exchange's deposit address: without its destination tag the money is lost. The
    tag goes to ChangeNOW as `extraId` on POST /v2/exchange and comes back as `payoutExtraId`
    (ChangeNOW API v2 reference, "Create exchange transaction": request `extraId`, response
    `payoutExtraId`)."""
    client = make_client(
        "-101002",
        "5.00",
        payout_currency="xrp",
        payout_network="xrp",
        wallet_address="rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh",
        payout_extra_id="105791",
    )
    credit_usdt(client, ["9.00"], first_id=101002)
    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.COMPLETED, batch.review_reason
    assert batch.payout_extra_id == "105791"
    exchanges = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["exchanges"]
    (recorded,) = [e for e in exchanges if e["id"] == batch.exchange_id]
    assert (recorded["payoutAddress"], recorded["payoutExtraId"]) == (client.wallet_address, "105791")
