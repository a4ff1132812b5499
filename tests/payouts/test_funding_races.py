"""A batch that stops funding (cancelled, or sent to review) never gets its host payment signed.

No worker here: the steps are called in this process, one at a time, to set up the exact
interleavings; anvil and the sandbox are real.
"""

import time

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from eth_account import Account
from web3 import Web3

from batching.conversion import CONVERSION_FLOW, check_threshold
from batching.models import BatchConversion
from evm_chain.node import EvmNode
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.exchange_batches.operator import cancel_unfunded, resume_funded
from payouts.exchange_batches.states import BatchStatus
from payouts.exchange_batches.steps import advance
from payouts.exchange_batches.transitions import to_review
from payouts.host_payments.machine import advance_host_payment, broadcast_and_check, sign_host_payment
from payouts.models import HostPayment, HostPaymentCandidate, HostPaymentStatus
from pgp_project.operations.models import AuditEvent
from standins.localchain import LocalChain, eip1559_fees, sign_and_send, wait_for_success

from ..conftest import ipn_body, post_ipn, wait_until
from ..factories import StaffUserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def funding_conversion(first_id: int) -> BatchConversion:
    http = HttpClient()
    for offset in range(3):
        post_ipn(http, ipn_body(payment_id=first_id + offset, price_amount="10.00", outcome_amount="0.004"))
    conversion = advance(CONVERSION_FLOW, check_threshold().conversion_id)
    assert conversion.status == BatchStatus.FUNDING
    assert HostPayment.objects.get(pk=conversion.host_payment_id).status == HostPaymentStatus.CREATED
    return conversion


def test_cancel_while_funding_but_unsigned_releases_rows_and_nothing_is_ever_signed(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain
) -> None:
    conversion = funding_conversion(11000)
    host_payment_id = HostPayment.objects.get(pk=conversion.host_payment_id).pk
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce = w3.eth.get_transaction_count(local_chain.hot_wallet_address, "pending")

    assert cancel_unfunded(CONVERSION_FLOW, conversion.pk, reason="operator").status == BatchStatus.CANCELLED
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING, batch_conversion_id=None).count() == 3
    # The host payment's task arrives late: there is nothing left to sign.
    with pytest.raises(HostPayment.DoesNotExist):
        sign_host_payment(host_payment_id)
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address, "pending") == nonce


def test_payment_of_a_batch_in_review_is_not_signed(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain
) -> None:
    conversion = funding_conversion(12000)
    to_review(CONVERSION_FLOW, conversion, BatchStatus.FAILED, "deadline passed (test)")
    host_payment = HostPayment.objects.get(pk=conversion.host_payment_id)
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce = w3.eth.get_transaction_count(local_chain.hot_wallet_address, "pending")
    assert sign_host_payment(host_payment.pk).status == HostPaymentStatus.CREATED
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address, "pending") == nonce


def test_a_stale_run_cannot_send_a_moved_on_batch_to_review(
    flow_environment: dict[str, str], threshold_client: Client
) -> None:
    conversion = funding_conversion(13000)
    stale = BatchConversion.objects.get(pk=conversion.pk)
    stale.status = BatchStatus.SWAP_CREATED  # what an older run had read
    assert to_review(CONVERSION_FLOW, stale, BatchStatus.FAILED, "stale").status == BatchStatus.FUNDING


def test_funded_batch_sent_to_review_can_be_resumed_and_finishes(
    flow_environment: dict[str, str], threshold_client: Client, settings
) -> None:
    """A conversion whose deadline passed while its host payment was confirming went to review; the
    operator's resume follows the exchange again and the rows are distributed."""
    settings.PGP_CHAIN_POLL_SECONDS = 0.5
    conversion = funding_conversion(14000)
    host_payment = HostPayment.objects.get(pk=conversion.host_payment_id)
    wait_until(lambda: advance_host_payment(host_payment.pk).status == HostPaymentStatus.CONFIRMED, timeout=60)
    conversion.refresh_from_db()
    to_review(CONVERSION_FLOW, conversion, BatchStatus.FAILED, "deadline passed (test)")
    assert resume_funded(CONVERSION_FLOW, conversion.pk, note="test").status == BatchStatus.EXCHANGING
    done = wait_until(
        lambda: advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.COMPLETED and conversion.pk, timeout=60
    )
    assert BatchConversion.objects.get(pk=done).credit_usdt_total is not None
    assert PayoutAccumulation.objects.filter(batch_conversion_id=done, status=AccumulationStatus.CONVERTED).count() == 3
    # Resume is refused for anything that is not a funded batch in review.
    assert resume_funded(CONVERSION_FLOW, done, note="again").status == BatchStatus.COMPLETED


def test_stuck_transaction_is_replaced_with_the_same_nonce_and_higher_fees(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain, settings
) -> None:
    """Our transaction is priced for the current base fee, then the base fee jumps a hundredfold:
    it sits unmined. After the stuck delay it is re-signed with the same nonce and higher fees;
    both hashes are kept, and exactly one transaction is mined."""
    settings.PGP_CHAINS = {"eth": {**settings.PGP_CHAINS["eth"], "max_fee_gwei": 100_000}}
    settings.PGP_REPLACE_STUCK_AFTER_SECONDS = 3
    conversion = funding_conversion(15000)
    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce_before = w3.eth.get_transaction_count(local_chain.hot_wallet_address, "latest")
    host_payment = sign_host_payment(HostPayment.objects.get(pk=conversion.host_payment_id).pk)
    # Hold mining while ours enters the pool at today's price, then make blocks far dearer.
    w3.provider.make_request("evm_setIntervalMining", [0])
    try:
        first = broadcast_and_check(host_payment.pk)
        first_fees = HostPayment.objects.get(pk=host_payment.pk).evm.max_fee_per_gas
        base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(max(base_fee, 10**9) * 100)])
    finally:
        w3.provider.make_request("evm_setIntervalMining", [1])
    assert first.status == HostPaymentStatus.BROADCAST
    time.sleep(2.5)
    assert node.receipt(first.tx_hash) is None, "priced under the new base fee, it must wait"
    time.sleep(1.5)
    replaced = broadcast_and_check(host_payment.pk)
    first_nonce = HostPaymentCandidate.objects.get(tx_hash=first.tx_hash).fee_details["nonce"]
    replaced_evm = HostPayment.objects.get(pk=host_payment.pk).evm
    assert replaced.tx_hash != first.tx_hash
    assert replaced_evm.nonce == first_nonce
    assert int(replaced_evm.max_fee_per_gas) > int(first_fees)
    confirmed = wait_until(
        lambda: (p := broadcast_and_check(host_payment.pk)).status == HostPaymentStatus.CONFIRMED and p,
        timeout=60,
    )
    hashes = set(HostPaymentCandidate.objects.filter(host_payment_id=host_payment.pk).values_list("tx_hash", flat=True))
    assert hashes == {first.tx_hash, replaced.tx_hash}
    assert confirmed.tx_hash == replaced.tx_hash
    assert node.receipt(first.tx_hash) is None
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address, "latest") == nonce_before + 1
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])  # leave the chain as found


# --- a way back from failed funding, through the admin's audited actions -------


def operator_http(username: str) -> HttpClient:
    http = HttpClient()
    http.force_login(StaffUserFactory.create(username=username))
    return http


def test_a_host_payment_a_lagging_node_called_failed_is_reverified_and_its_batch_resumed(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain, settings
) -> None:
    conversion = funding_conversion(300000)
    host_payment = sign_host_payment(conversion.host_payment_id)
    broadcast_and_check(host_payment.pk)
    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    wait_until(lambda: (r := node.receipt(host_payment.tx_hash)) and node.confirmations(r) >= 3, timeout=30)
    # What a lagging node made us believe: failed, and the batch sent to review.
    HostPayment.objects.filter(pk=host_payment.pk).update(status="failed", last_error="receipt not found")
    assert advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.FAILED

    http = operator_http("night-shift")
    http.post(
        reverse("admin:payouts_hostpayment_changelist"), {"action": "reverify", "_selected_action": [host_payment.pk]}
    )
    host_payment.refresh_from_db()
    assert host_payment.status == HostPaymentStatus.CONFIRMED
    reverified = AuditEvent.objects.get(subject_type="host_payment", subject_id=host_payment.pk, action="reverify")
    assert str(reverified.actor) == "night-shift"
    assert "mined in block" in reverified.reason
    http.post(
        reverse("admin:batching_batchconversion_changelist"),
        {"action": "resume_funded", "_selected_action": [conversion.pk]},
    )
    settings.PGP_EXCHANGE_POLL_SECONDS = 0.5
    wait_until(lambda: advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.COMPLETED, timeout=60)


def test_rows_of_a_batch_whose_nonce_another_transaction_took_are_released_by_an_operator(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain, caplog
) -> None:
    conversion = funding_conversion(310000)
    host_payment = sign_host_payment(conversion.host_payment_id)  # signed, not yet sent
    # Another transaction from the hot wallet takes the payment's nonce before it is broadcast.
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    hot = Account.from_key(local_chain.hot_wallet_private_key)
    intruder = {
        "chainId": local_chain.chain_id,
        "nonce": host_payment.evm.nonce,
        "to": hot.address,
        "value": 0,
        "gas": 21_000,
        **eip1559_fees(w3),
    }
    intruded = wait_for_success(w3, sign_and_send(w3, hot, intruder))
    with caplog.at_level("ERROR"):
        assert broadcast_and_check(host_payment.pk).status == HostPaymentStatus.FAILED
    assert f"ALERT host_payment_failed host_payment={host_payment.pk}" in caplog.text
    assert advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.FAILED

    http = operator_http("day-shift")
    changelist = reverse("admin:batching_batchconversion_changelist")
    # The proof is read from a block with the required confirmations.
    wait_until(lambda: w3.eth.block_number - intruded["blockNumber"] + 1 >= 3, timeout=15)
    http.post(changelist, {"action": "release_unsent", "_selected_action": [conversion.pk]})
    conversion.refresh_from_db()
    assert conversion.status == BatchStatus.CANCELLED
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING, batch_conversion_id=None).count() == 3
    released = AuditEvent.objects.get(subject_type="conversion", subject_id=conversion.pk, action="release_unsent")
    assert f"was used by {intruded['transactionHash'].to_0x_hex()}" in released.reason
    assert "which is not ours" in released.reason
    assert str(released.actor) == "day-shift"


def test_release_is_refused_while_the_chain_shows_the_payment_went_out(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain
) -> None:
    conversion = funding_conversion(320000)
    host_payment = sign_host_payment(conversion.host_payment_id)
    broadcast_and_check(host_payment.pk)
    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    wait_until(lambda: node.receipt(host_payment.tx_hash), timeout=30)
    # Marked failed by mistake: the chain has it mined, so its rows must not go to another batch.
    HostPayment.objects.filter(pk=host_payment.pk).update(status="failed")
    assert advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.FAILED
    page = operator_http("day-shift").post(
        reverse("admin:batching_batchconversion_changelist"),
        {"action": "release_unsent", "_selected_action": [conversion.pk]},
        follow=True,
    )
    assert b"does not prove that nothing was sent" in page.content
    assert BatchConversion.objects.get(pk=conversion.pk).status == BatchStatus.FAILED
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.SWAPPING).count() == 3


def test_a_fixed_rate_expiring_twice_while_the_exchange_is_created_is_a_wait_not_a_review(
    flow_environment: dict[str, str], threshold_client: Client, sandbox
) -> None:
    """ChangeNOW refuses the create twice because the fixed rate expired (the quote, then the
    fresh one): nothing is wrong with the batch, so it waits for the step's retry (as before
    routing) instead of going to review for a person."""
    from integrations.exchange.port import ExchangeUnavailable

    from ..flows import inject, reset_sandbox

    reset_sandbox(sandbox)
    http = HttpClient()
    for offset in range(3):
        post_ipn(http, ipn_body(payment_id=16000 + offset, price_amount="10.00", outcome_amount="0.004"))
    conversion_id = check_threshold().conversion_id
    inject(sandbox, {"refuse": {"count": 2, "path": "/v2/exchange", "error": "rate_id_not_found_or_expired"}})
    try:
        with pytest.raises(ExchangeUnavailable):
            advance(CONVERSION_FLOW, conversion_id)
        conversion = BatchConversion.objects.get(pk=conversion_id)
        assert conversion.status == BatchStatus.CREATED, conversion.review_reason
        # The rate holds on the retry: the exchange is created and funded.
        assert advance(CONVERSION_FLOW, conversion_id).status == BatchStatus.FUNDING
    finally:
        reset_sandbox(sandbox)


def test_a_run_never_funds_an_exchange_a_requote_put_in_place_of_the_one_it_rechecked(
    flow_environment: dict[str, str], threshold_client: Client, sandbox
) -> None:
    """Run A re-checks the batch's exchange before funding it (slowly: ChangeNOW takes 3 s to
    answer). Meanwhile another run re-quotes the batch and a fresh exchange, whose fixed rate
    expires within the margin, takes its place. A must not fund that one: nobody re-checked it."""
    import threading

    from django.db import connection

    from payouts.exchange_batches.requote import requote
    from payouts.exchange_batches.steps import _create_exchange

    from ..flows import inject, reset_sandbox

    reset_sandbox(sandbox)
    http = HttpClient()
    for offset in range(3):
        post_ipn(http, ipn_body(payment_id=17000 + offset, price_amount="10.00", outcome_amount="0.004"))
    conversion = _create_exchange(CONVERSION_FLOW, BatchConversion.objects.get(pk=check_threshold().conversion_id))
    assert conversion.status == BatchStatus.SWAP_CREATED
    checked = conversion.exchange_id
    inject(sandbox, {"slow": {"count": 1, "path": "/v2/exchange/by-id", "seconds": "3"}})

    def run_a() -> None:
        try:
            advance(CONVERSION_FLOW, conversion.pk)
        finally:
            connection.close()

    run = threading.Thread(target=run_a)
    run.start()
    try:
        time.sleep(1)  # A is inside its re-check of `checked`
        requote(CONVERSION_FLOW, conversion.pk, reason="test: another run found it expiring", exchange_id=checked)
        inject(sandbox, {"next_quote_ttl_seconds": 5})  # the replacement's rate expires within the margin
        replaced = _create_exchange(CONVERSION_FLOW, BatchConversion.objects.get(pk=conversion.pk))
        assert replaced.status == BatchStatus.SWAP_CREATED
        assert replaced.exchange_id != checked
    finally:
        run.join(30)
        reset_sandbox(sandbox)
    conversion = BatchConversion.objects.get(pk=conversion.pk)
    assert conversion.host_payment_id is None, f"funded {conversion.exchange_id}, which no run re-checked"
    # The next run re-checks the replacement, finds its rate expiring, and replaces it unfunded.
    assert advance(CONVERSION_FLOW, conversion.pk).status == BatchStatus.CREATED
    assert not HostPayment.objects.exists()
