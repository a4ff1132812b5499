"""What ChangeNOW documents, through the whole flow: signed IPNs, a real worker per test (each with
the environment its case needs), the ChangeNOW adapter against the sandbox, and anvil. The
reference is ChangeNOW's API v2, https://documenter.getpostman.com/view/8180765/SVfTPnM8; each
test names the section it relies on."""

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.utils import timezone
from web3 import Web3

from batching.conversion import check_threshold
from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.recovery import run_recovery_sweep
from standins.erc20 import ERC20_ABI
from standins.localchain import LocalChain
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import CHANGENOW_TEST_API_KEY, wait_until
from ..factories import ClientFactory
from ..flows import alert_lines, inject, post_eth_payment, reset_sandbox, wait_final_conversion

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    reset_sandbox(sandbox)


def sandbox_exchange(sandbox: SandboxChangeNow, exchange_id: str | None) -> dict[str, Any]:
    """The sandbox's record of one exchange, its amounts as Decimal."""
    answer = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5)
    listing = json.loads(answer.text, parse_float=Decimal)
    (exchange,) = [exchange for exchange in listing["exchanges"] if exchange["id"] == exchange_id]
    return exchange


def three_payments(client: Client, first_id: int) -> None:
    for offset in range(3):  # 0.012 ETH, 29.10 USD net: over the 20 USD threshold
        post_eth_payment(first_id + offset, client_id=client.external_id, eth="0.004")


def test_the_fixed_rate_expiry_comes_from_the_estimate_and_reaches_the_batch(
    start_worker, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    """ "Estimated exchange amount" answers validUntil (fixed-rate, useRateId=true); "Create
    exchange transaction" and "Exchange status" do not. The re-check before funding reads the
    expiry the batch stored from the estimate."""
    start_worker()
    three_payments(threshold_client, 300000)
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert "validUntil" not in sandbox_exchange(sandbox, conversion.exchange_id)  # by-id has none
    assert conversion.exchange_valid_until is not None
    # The sandbox's fixed rates hold 300 s from the estimate, made just before the exchange.
    created = AuditEvent.objects.get(subject_type="conversion", subject_id=conversion.pk, to_status="swap_created")
    assert timedelta(seconds=290) < conversion.exchange_valid_until - created.created_at <= timedelta(seconds=300)


def test_a_refused_api_key_makes_the_batch_wait_with_an_alert_until_the_key_is_right(
    start_worker, threshold_client: Client, tmp_path
) -> None:
    """A 401 (the x-changenow-api-key header refused, "Authentication") is not the batch's
    fault: it waits, alerted, and goes on by itself once the mounted key file holds the right
    key (CHANGENOW_API_KEY_FILE is read at every call: no restart)."""
    key_file = tmp_path / "changenow_api_key"
    key_file.write_text("rotated-away-key\n")
    worker = start_worker(CHANGENOW_API_KEY="", CHANGENOW_API_KEY_FILE=str(key_file))
    three_payments(threshold_client, 310000)
    conversion_id = check_threshold().conversion_id  # this process still has the right key
    wait_until(lambda: alert_lines(worker, "exchange_unauthorized"), timeout=30)
    # The alert is written during the call; the step's failure is recorded on the batch after it.
    waiting = wait_until(
        lambda: BatchConversion.objects.filter(pk=conversion_id).exclude(last_error="").first(), timeout=30
    )
    assert waiting.status == BatchStatus.CREATED  # not failed, nothing created at the exchange
    assert waiting.exchange_id is None
    assert "API key refused" in waiting.last_error  # a wait: no provider could answer
    assert "HTTP 401" in waiting.last_error
    assert waiting.attempts >= 1
    assert "rotated-away-key" not in "".join(worker.output)

    key_file.write_text(CHANGENOW_TEST_API_KEY + "\n")
    conversion = wait_final_conversion(conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert not alert_lines(worker, "batch_review")


def test_an_amount_to_the_chain_contradicts_is_never_distributed(
    start_worker, threshold_client: Client, sandbox: SandboxChangeNow, local_chain: LocalChain
) -> None:
    """ "Exchange status" reports amountTo and payoutHash once finished. Before amountTo is
    distributed, the payout transaction is read on our node: here the exchange reports 1 USDT
    more than its payout moved into our hot wallet, so the batch goes to review, alerted."""
    worker = start_worker()
    inject(sandbox, {"reported_amount_to_skew": "1"})
    three_payments(threshold_client, 320000)
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.FAILED
    exchange = sandbox_exchange(sandbox, conversion.exchange_id)
    sent, reported = exchange["sandboxAmountSent"], exchange["amountTo"]
    assert (sent, reported) == (Decimal("35.82"), Decimal("36.82"))  # 0.012 ETH at 3000 USD less 0.5 %
    assert "reports amountTo 36.82 USDT" in conversion.review_reason
    assert f"moved 35.820000 USDT into our wallet {local_chain.hot_wallet_address}" in conversion.review_reason
    assert "nothing was distributed" in conversion.review_reason
    assert conversion.received_usdt is None
    rows = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk)
    assert set(rows.values_list("status", flat=True)) == {AccumulationStatus.SWAPPING}  # held with the batch
    assert not rows.filter(credit_usdt__isnull=False).exists()
    wait_until(lambda: alert_lines(worker, "batch_review"), timeout=10)
    assert any(f"id={conversion.pk} " in line for line in alert_lines(worker, "batch_review"))
    # What the chain shows did arrive, for the operator who settles it.
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    token = w3.eth.contract(address=Web3.to_checksum_address(local_chain.usdt_address), abi=ERC20_ABI)
    receipt = w3.eth.get_transaction_receipt(exchange["payoutHash"])
    (transfer,) = token.events.Transfer().process_receipt(receipt)
    assert transfer["args"]["to"] == local_chain.hot_wallet_address
    assert transfer["args"]["value"] == 35_820_000


def test_a_payout_the_chain_does_not_show_is_never_distributed_and_waits_for_its_deadline(
    start_worker, threshold_client: Client, sandbox: SandboxChangeNow, settings
) -> None:
    """ "Exchange status" names a payoutHash our node does not have (not mined yet, or never
    sent): the batch keeps polling, alerted once, distributes nothing, and its deadline sends it
    to review."""
    worker = start_worker()
    settings.PGP_BATCH_DEADLINE_SECONDS = 25
    unknown_hash = "0x" + "ab" * 32
    inject(sandbox, {"reported_payout_hash": unknown_hash})
    three_payments(threshold_client, 325000)
    conversion_id = check_threshold().conversion_id
    wait_until(lambda: alert_lines(worker, "exchange_payout_unseen"), timeout=40)
    time.sleep(2)  # several polls meanwhile: still waiting, alerted once
    (line,) = alert_lines(worker, "exchange_payout_unseen")
    assert f"id={conversion_id} " in line
    assert unknown_hash in line
    waiting = BatchConversion.objects.get(pk=conversion_id)
    assert (waiting.status, waiting.exchange_status, waiting.received_usdt) == (
        BatchStatus.EXCHANGING,
        "finished",
        None,
    )
    assert not PayoutAccumulation.objects.filter(batch_conversion_id=conversion_id, credit_usdt__isnull=False).exists()

    assert waiting.deadline_at is not None
    wait_until(lambda: waiting.deadline_at < timezone.now(), timeout=30)
    assert run_recovery_sweep().expired["conversion"] == [conversion_id]
    assert BatchConversion.objects.get(pk=conversion_id).status == BatchStatus.FAILED


def test_a_matching_amount_to_is_distributed(start_worker, threshold_client: Client, sandbox: SandboxChangeNow) -> None:
    """The same check, passing: amountTo of "Exchange status" equals the payout on chain."""
    start_worker()
    three_payments(threshold_client, 330000)
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    exchange = sandbox_exchange(sandbox, conversion.exchange_id)
    assert conversion.received_usdt == exchange["sandboxAmountSent"] == exchange["amountTo"] == Decimal("35.82")
    assert conversion.payout_tx_hash == exchange["payoutHash"]


def test_a_conversion_over_the_exchange_maximum_is_capped_and_the_rest_waits(
    start_worker, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    """ "Exchange range" answers maxAmount: the conversion claims only what fits (here 0.01 ETH,
    30 USD at the sandbox's price), and the exchange takes it."""
    start_worker()
    inject(sandbox, {"max_amount_usd": "30"})
    three_payments(threshold_client, 340000)
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert (conversion.row_count, conversion.total_eth) == (2, Decimal("0.008"))
    left = PayoutAccumulation.objects.get(batch_conversion_id=None)
    assert left.status == AccumulationStatus.PENDING
    assert left.payment.provider_payment_id == 340002  # the newest waits for the next conversion


def test_deposit_too_small_waits_below_the_minimum_like_out_of_range(start_worker, sandbox: SandboxChangeNow) -> None:
    """ "Errors": deposit_too_small refuses an amount under the minimum, as out_of_range does, so
    an instant payout so refused waits visibly to be merged, not in review."""
    start_worker()
    client = ClientFactory.create(
        external_id="-100851",
        payout_strategy="instant",
        payout_threshold_usd=Decimal(0),
        payout_currency="usdc",
        payout_network="eth",
        wallet_address="0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    )
    # Every estimate of this test answers deposit_too_small (the payout's value is quoted, then
    # its exchange estimated), where the sandbox alone would answer out_of_range.
    inject(sandbox, {"refuse": {"count": 10, "path": "/v2/exchange/estimated-amount", "error": "deposit_too_small"}})
    post_eth_payment(350000, client_id=client.external_id, eth="0.001")  # 0.00097 ETH: under the minimum
    batch = wait_until(
        lambda: PayoutBatch.objects.filter(client=client, status=BatchStatus.WAITING_MINIMUM).first(), timeout=30
    )
    assert "below the exchange minimum" in batch.review_reason
    assert "changenow refused (out_of_range)" in batch.last_error
    assert "deposit_too_small" in batch.last_error
    assert batch.exchange_id is None


def test_an_instant_payout_over_the_maximum_goes_to_review_saying_so(start_worker, sandbox: SandboxChangeNow) -> None:
    """ "Exchange range": an instant payout is one payment, so it cannot be capped; over maxAmount
    the exchange refuses it (out_of_range, "Errors") and the review reason names the maximum."""
    start_worker()
    client = ClientFactory.create(
        external_id="-100852",
        payout_strategy="instant",
        payout_threshold_usd=Decimal(0),
        payout_currency="usdc",
        payout_network="eth",
        wallet_address="0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    )
    inject(sandbox, {"max_amount_usd": "15"})  # 0.005 ETH at the sandbox's 3000 USD
    post_eth_payment(360000, client_id=client.external_id, eth="0.01")  # 0.0097 ETH to send
    batch = wait_until(lambda: PayoutBatch.objects.filter(client=client, status=BatchStatus.FAILED).first(), timeout=30)
    assert "changenow refused (out_of_range)" in batch.review_reason
    assert "0.0097 is over the providers' highest maximum 0.005 for one exchange" in batch.review_reason
    assert "nothing was sent" in batch.review_reason
    assert batch.host_payment_id is None
