"""A worker killed (SIGKILL) between signing the host payment and broadcasting it.

The signed bytes and hash were committed before the crash, so the restarted system broadcasts
exactly that transaction: nothing is sent twice and no second nonce is used.
"""

from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from web3 import Web3

from batching.conversion import check_threshold
from batching.models import BatchConversion
from evm_chain.node import EvmNode
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus
from pgp_project.operations.recovery import run_recovery_sweep
from standins.localchain import LocalChain
from standins.rpc_proxy import RpcProxy

from ..conftest import WorkerProcess, ipn_body, post_ipn, wait_until
from ..flows import host_payment_of_conversion

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_worker_killed_after_signing_broadcasts_the_same_transaction_once(
    flow_environment: dict[str, str], threshold_client: Client, local_chain: LocalChain, settings
) -> None:
    http = HttpClient()
    for offset in range(4):
        post_ipn(http, ipn_body(payment_id=9000 + offset, price_amount="12.00", outcome_amount="0.0041"))
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    hot = local_chain.hot_wallet_address
    nonce_before = w3.eth.get_transaction_count(hot, "pending")

    # A worker whose broadcast never reaches the chain (the stand-in proxy holds it), killed
    # right there: after the signing commit, before the node has the transaction.
    proxy = RpcProxy(local_chain.rpc_url)
    proxy.start()
    proxy.hold_broadcasts()
    crashing = WorkerProcess({**flow_environment, "ETH_RPC_URL": proxy.url})
    try:
        conversion_id = check_threshold().conversion_id
        signed = wait_until(
            lambda: host_payment_of_conversion(conversion_id, status=HostPaymentStatus.SIGNED),
            timeout=60,
        )
        wait_until(lambda: proxy.held_count() >= 1, timeout=30)
    finally:
        crashing.kill()
        proxy.stop()

    node = EvmNode(local_chain.rpc_url, chain_id=local_chain.chain_id)
    assert not node.is_known(signed.tx_hash), "nothing may reach the chain before the broadcast step"
    assert w3.eth.get_transaction_count(hot, "pending") == nonce_before

    # Restart. The killed task's message is still unacknowledged in the broker; the recovery
    # sweep is what re-drives it (here run at once instead of waiting for Beat).
    settings.PGP_OVERDUE_GRACE_SECONDS = 0
    restarted = WorkerProcess(flow_environment)
    try:
        report = run_recovery_sweep()
        assert signed.pk in report.redriven["host_payment"]
        conversion = wait_until(
            lambda: BatchConversion.objects.filter(
                pk=conversion_id, status__in=[BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.REFUNDED]
            ).first(),
            timeout=120,
        )
    finally:
        restarted.stop()

    assert conversion.status == BatchStatus.COMPLETED, conversion.review_reason
    host_payment = HostPayment.objects.get(pk=signed.pk)
    assert host_payment.status == HostPaymentStatus.CONFIRMED
    assert (host_payment.tx_hash, host_payment.raw_transaction, host_payment.evm.nonce) == (
        signed.tx_hash,
        signed.raw_transaction,
        signed.evm.nonce,
    )
    mined = w3.eth.get_transaction(host_payment.tx_hash)
    assert mined["nonce"] == signed.evm.nonce
    assert mined["value"] == int(Decimal("0.0164") * 10**18)
    assert w3.eth.get_transaction_count(hot, "latest") == nonce_before + 1, "exactly one transaction was sent"
