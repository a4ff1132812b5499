"""Micro-batch conversion end to end: a real worker, PostgreSQL, anvil and the sandbox, on Redis and
again on RabbitMQ (every test of the module runs on both brokers, workers included).

Only our own service entry points are called from the test (the Beat job's body, the recovery
sweep); everything else happens in the worker through the broker, on the chain and over HTTP.
"""

from decimal import Decimal

import pytest
import requests
from django.test import Client as HttpClient
from web3 import Web3

from batching.conversion import CONVERSION_FLOW, check_threshold
from batching.distribution import distribute_conversion
from batching.models import BatchConversion
from evm_chain.node import EvmNode
from integrations.exchange.port import ExchangeRef, ExchangeStatus
from integrations.exchange.registry import exchange_provider
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.exchange_batches.operator import cancel_unfunded
from payouts.exchange_batches.states import BatchStatus
from payouts.exchange_batches.steps import advance
from payouts.host_payments.machine import advance_host_payment
from payouts.models import HostPayment, HostPaymentStatus
from pgp_project.money import to_base_units
from pgp_project.operations.recovery import run_recovery_sweep
from standins.erc20 import ERC20_ABI
from standins.localchain import LocalChain
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import ipn_body, on_both_brokers, post_ipn, run_at_the_same_moment, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), *on_both_brokers()]
FINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED, BatchStatus.REFUNDED)


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/reset", timeout=5).raise_for_status()


def inject(sandbox: SandboxChangeNow, spec: dict) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/faults", json=spec, timeout=5).raise_for_status()


def sandbox_exchanges(sandbox: SandboxChangeNow) -> dict[str, dict]:
    listing = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()
    return {exchange["id"]: exchange for exchange in listing["exchanges"]}


def post_eth_payments(count: int, *, first_id: int = 1000) -> list[int]:
    http = HttpClient()
    for offset in range(count):
        price = Decimal(10 + offset % 7) + Decimal("0.49")
        eth = (Decimal("0.0031") + Decimal(offset) * Decimal("0.000017")).quantize(Decimal("0.00000001"))
        response = post_ipn(
            http, ipn_body(payment_id=first_id + offset, price_amount=str(price), outcome_amount=str(eth))
        )
        assert response.status_code == 200
    return list(range(first_id, first_id + count))


def wait_final(conversion_id: int, timeout: float = 120) -> BatchConversion:
    return wait_until(
        lambda: BatchConversion.objects.filter(pk=conversion_id, status__in=FINAL).first(), timeout=timeout
    )


def test_fifty_payments_make_one_conversion_that_distributes_exactly(
    celery_worker_process, threshold_client: Client, local_chain: LocalChain, sandbox: SandboxChangeNow
) -> None:
    exchanges_before = set(sandbox_exchanges(sandbox))
    post_eth_payments(50)
    rows_eth = sum(PayoutAccumulation.objects.values_list("source_amount", flat=True))
    check = check_threshold()
    assert check.conversion_id is not None
    conversion = wait_final(check.conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.row_count == 50
    assert conversion.total_eth == rows_eth

    # The money invariant, on what the database holds.
    rows = list(PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk))
    assert len(rows) == 50
    assert all(row.status == AccumulationStatus.CONVERTED for row in rows)
    assert sum(r.credit_usdt for r in rows) + sum(r.fee_usdt for r in rows) == conversion.received_usdt
    assert sum(r.usdt_amount for r in rows) == conversion.received_usdt
    assert conversion.fee_usdt_total + conversion.credit_usdt_total == conversion.received_usdt

    # amountTo is ChangeNOW's figure, and it arrived at the host wallet on chain.
    assert conversion.exchange_provider == "changenow"
    state = exchange_provider("changenow").status(ExchangeRef(conversion.exchange_id))
    assert state.status == ExchangeStatus.FINISHED
    assert state.amount_to == conversion.received_usdt
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    payout_receipt = w3.eth.get_transaction_receipt(conversion.payout_tx_hash)
    transfer = w3.eth.contract(address=local_chain.usdt_address, abi=ERC20_ABI).events.Transfer()
    (event,) = transfer.process_receipt(payout_receipt)
    assert event["args"]["to"] == local_chain.hot_wallet_address
    assert event["args"]["value"] == to_base_units(conversion.received_usdt, 6)

    # The ETH that left the hot wallet is exactly the rows' ETH plus gas.
    host_payment = HostPayment.objects.get(pk=conversion.host_payment_id)
    assert host_payment.status == HostPaymentStatus.CONFIRMED
    receipt = w3.eth.get_transaction_receipt(host_payment.tx_hash)
    sent = w3.eth.get_transaction(host_payment.tx_hash)
    assert sent["to"] == Web3.to_checksum_address(conversion.payin_address)
    assert sent["value"] == to_base_units(rows_eth, 18)
    hot = local_chain.hot_wallet_address
    before = w3.eth.get_balance(hot, block_identifier=receipt["blockNumber"] - 1)
    after = w3.eth.get_balance(hot, block_identifier=receipt["blockNumber"])
    assert before - after == to_base_units(rows_eth, 18) + receipt["gasUsed"] * receipt["effectiveGasPrice"]

    # Every chain step run again after success changes nothing: one exchange, one transaction.
    nonce_after = w3.eth.get_transaction_count(hot)
    assert advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.COMPLETED
    assert advance_host_payment(host_payment.pk).status == HostPaymentStatus.CONFIRMED
    assert distribute_conversion(conversion.pk, conversion.received_usdt, "0xagain") is None
    assert check_threshold().conversion_id is None
    assert w3.eth.get_transaction_count(hot) == nonce_after
    assert set(sandbox_exchanges(sandbox)) - exchanges_before == {conversion.exchange_id}
    assert HostPayment.objects.count() == 1


def test_concurrent_threshold_checks_create_one_conversion(celery_worker_process, threshold_client: Client) -> None:
    post_eth_payments(12, first_id=2000)
    results = run_at_the_same_moment(check_threshold)
    created = [r.conversion_id for r in results if r.conversion_id]
    assert len(created) == 1
    assert BatchConversion.objects.count() == 1
    assert PayoutAccumulation.objects.filter(batch_conversion_id=created[0]).count() == 12
    assert wait_final(created[0]).status == BatchStatus.COMPLETED


def test_concurrent_steps_fund_only_the_first_stored_exchange(
    celery_worker_process, threshold_client: Client, local_chain: LocalChain, sandbox: SandboxChangeNow
) -> None:
    """The Beat job's message plus two more runs of the first step at the same moment: several
    exchanges may be created (reliability rule 4), only the stored one is funded, once."""
    exchanges_before = set(sandbox_exchanges(sandbox))
    post_eth_payments(5, first_id=3000)
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce_before = w3.eth.get_transaction_count(local_chain.hot_wallet_address)
    conversion_id = check_threshold().conversion_id
    run_at_the_same_moment(lambda: advance(CONVERSION_FLOW, conversion_id))
    conversion = wait_final(conversion_id)
    assert conversion.status == BatchStatus.COMPLETED
    host_payment = HostPayment.objects.get(pk=conversion.host_payment_id)
    assert host_payment.to_address == conversion.payin_address
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address) == nonce_before + 1
    created = {k: v for k, v in sandbox_exchanges(sandbox).items() if k not in exchanges_before}
    abandoned = {entry.removeprefix("changenow:") for entry in conversion.abandoned_exchange_ids}
    assert set(created) == {conversion.exchange_id, *abandoned}
    assert [k for k, v in created.items() if v["status"] == "finished"] == [conversion.exchange_id]


@pytest.mark.parametrize("fault", ["http_429", "http_500"])
def test_changenow_error_storms_are_ridden_out(
    celery_worker_process, threshold_client: Client, sandbox: SandboxChangeNow, fault: str
) -> None:
    post_eth_payments(6, first_id=4000)
    inject(sandbox, {fault: {"count": 8, "retry_after": 1}} if fault == "http_429" else {fault: {"count": 8}})
    # The check claims nothing while it cannot learn the exchange minimum; a later run does.
    conversion = wait_final(wait_until(lambda: check_threshold().conversion_id, timeout=60), timeout=180)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert requests.get(f"{sandbox.base_url}/sandbox/faults", timeout=5).json()  # the storm did happen
    assert conversion.credit_usdt_total + conversion.fee_usdt_total == conversion.received_usdt


@pytest.mark.parametrize(("outcome", "status"), [("failed", BatchStatus.FAILED), ("refunded", BatchStatus.REFUNDED)])
def test_failed_or_refunded_exchange_is_held_for_review_without_distribution(
    celery_worker_process, threshold_client: Client, sandbox: SandboxChangeNow, outcome: str, status: str
) -> None:
    post_eth_payments(5, first_id=5000)
    inject(sandbox, {"next_outcome": outcome})
    conversion = wait_final(check_threshold().conversion_id)
    assert conversion.status == status
    assert outcome in conversion.review_reason
    assert conversion.received_usdt is None
    rows = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk)
    assert rows.count() == 5
    assert all(r.status == AccumulationStatus.SWAPPING and r.credit_usdt is None for r in rows)
    # Funds moved: the operator's cancel must refuse to release these rows.
    assert cancel_unfunded(CONVERSION_FLOW, conversion.pk, reason="operator").status == status


def test_rows_arriving_during_a_conversion_wait_for_the_next_one(
    celery_worker_process, threshold_client: Client
) -> None:
    post_eth_payments(5, first_id=6000)
    conversion_id = check_threshold().conversion_id
    late = post_eth_payments(3, first_id=6100)
    conversion = wait_final(conversion_id)
    assert conversion.status == BatchStatus.COMPLETED
    assert conversion.row_count == 5
    late_rows = PayoutAccumulation.objects.filter(payment__provider_payment_id__in=late)
    assert all(r.status == AccumulationStatus.PENDING and r.batch_conversion_id is None for r in late_rows)


def test_mismatching_exchange_amount_is_never_sent(
    celery_worker_process, threshold_client: Client, sandbox: SandboxChangeNow, local_chain: LocalChain
) -> None:
    post_eth_payments(5, first_id=7000)
    inject(sandbox, {"from_amount_skew": "0.000001"})
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce_before = w3.eth.get_transaction_count(local_chain.hot_wallet_address)
    conversion = wait_final(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.FAILED
    assert "nothing was sent" in conversion.review_reason
    assert conversion.host_payment_id is None
    assert not HostPayment.objects.exists()
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address) == nonce_before
    # Nothing moved, so the operator may cancel and release the rows for the next batch.
    assert cancel_unfunded(CONVERSION_FLOW, conversion.pk, reason="operator").status == BatchStatus.CANCELLED
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING, batch_conversion_id=None).count() == 5


def test_sweep_cancels_an_unfunded_conversion_past_its_deadline(
    flow_environment: dict[str, str], threshold_client: Client, settings, caplog: pytest.LogCaptureFixture
) -> None:
    """No worker: the first step's message is never run, as if lost. Past the deadline the
    sweep cancels (nothing was sent) and releases the rows, with a greppable alert."""
    settings.PGP_BATCH_DEADLINE_SECONDS = 0
    settings.PGP_OVERDUE_GRACE_SECONDS = 0
    post_eth_payments(4, first_id=8000)
    conversion_id = check_threshold().conversion_id
    with caplog.at_level("ERROR"):
        report = run_recovery_sweep()
    assert report.expired["conversion"] == [conversion_id]
    conversion = BatchConversion.objects.get(pk=conversion_id)
    assert conversion.status == BatchStatus.CANCELLED
    assert "deadline passed" in conversion.review_reason
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING).count() == 4
    assert f"ALERT batch_deadline_passed kind=conversion id={conversion_id} state=created" in caplog.text


def test_evm_node_reads_balances_exactly(local_chain: LocalChain) -> None:
    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    assert node.token_balance(local_chain.usdt_address, local_chain.treasury_address) > 0
    assert node.eth_balance(local_chain.hot_wallet_address) > 10**18
