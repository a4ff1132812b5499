"""Key rotation cannot double-send, and a contract wallet gets the gas it needs: real workers
started with the keys of each phase, the sandbox ChangeNOW and anvil."""

from decimal import Decimal

import pytest
from eth_account import Account
from web3 import Web3

from batching.conversion import check_threshold
from evm_chain.models import EvmSender
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentWait, PayoutBatch
from pgp_project.operations.recovery import run_recovery_sweep
from standins.localchain import (
    ANVIL_DEV_PRIVATE_KEYS,
    CONTRACTS_DIR,
    LocalChain,
    compile_contract,
    eip1559_fees,
    sign_and_send,
    wait_for_success,
)
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import wait_until
from ..factories import ClientFactory
from ..flows import (
    alert_lines,
    host_payment_of_conversion,
    post_eth_payment,
    reset_sandbox,
    wait_final_conversion,
    wait_final_payout,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NEW_KEY = ANVIL_DEV_PRIVATE_KEYS[7]


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    reset_sandbox(sandbox)


def conversion_of(client: Client, first_id: int) -> int:
    for offset in range(3):
        post_eth_payment(first_id + offset, client_id=client.external_id, eth="0.004")
    conversion_id = check_threshold().conversion_id
    assert conversion_id is not None
    return conversion_id


def redrive_host_payment(host_payment_id: int) -> None:
    wait_until(lambda: host_payment_id in run_recovery_sweep().redriven.get("host_payment", []), timeout=15)


def test_a_rotated_key_signs_only_its_own_payments_and_new_ones_use_the_new_key(
    start_worker, threshold_client: Client, local_chain: LocalChain, settings
) -> None:
    settings.PGP_OVERDUE_GRACE_SECONDS = 0
    old_address, new_address = local_chain.hot_wallet_address, Account.from_key(NEW_KEY).address
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))

    # A payment from the old key waits, unsigned (fees above a zero cap), when the key rotates.
    start_worker(ETH_MAX_FEE_GWEI="0")
    first = conversion_of(threshold_client, 250000)
    waiting = wait_until(lambda: host_payment_of_conversion(first, waiting_for=HostPaymentWait.FEE_CAP))
    assert waiting.from_address == old_address

    # Rotated, with the old key gone: it is never signed from another account; it waits, alerted.
    worker = start_worker(HOT_WALLET_PRIVATE_KEY=NEW_KEY)
    redrive_host_payment(waiting.pk)
    wait_until(lambda: HostPayment.objects.get(pk=waiting.pk).waiting_for == HostPaymentWait.SIGNING_KEY, timeout=20)
    assert HostPayment.objects.get(pk=waiting.pk).status == "created"
    wait_until(lambda: alert_lines(worker, "signing_key_missing"), timeout=10)
    assert "HOT_WALLET_PREVIOUS_PRIVATE_KEYS" in HostPayment.objects.get(pk=waiting.pk).last_error

    # The old key kept in the keyring: its payment goes out from its own address ...
    start_worker(HOT_WALLET_PRIVATE_KEY=NEW_KEY, HOT_WALLET_PREVIOUS_PRIVATE_KEYS=local_chain.hot_wallet_private_key)
    redrive_host_payment(waiting.pk)
    assert wait_final_conversion(first).status == BatchStatus.COMPLETED
    sent = w3.eth.get_transaction(HostPayment.objects.get(pk=waiting.pk).tx_hash)
    assert sent["from"] == old_address

    # ... while a new payment uses the new key, with a nonce row of its own.
    second = conversion_of(threshold_client, 251000)
    assert wait_final_conversion(second).status == BatchStatus.COMPLETED
    new_payment = host_payment_of_conversion(second)
    assert new_payment is not None
    assert new_payment.from_address == new_address
    assert w3.eth.get_transaction(new_payment.tx_hash)["from"] == new_address
    assert set(EvmSender.objects.values_list("address", flat=True)) == {old_address, new_address}


def test_an_eth_payout_to_a_contract_wallet_gets_the_gas_it_needs(start_worker, local_chain: LocalChain) -> None:
    start_worker()
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    abi, bytecode = compile_contract(CONTRACTS_DIR / "GasHungryWallet.sol", "GasHungryWallet")
    deployer = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[6])
    deploy = {
        "chainId": local_chain.chain_id,
        "nonce": w3.eth.get_transaction_count(deployer.address, "pending"),
        "data": bytecode,
        "gas": 500_000,
        **eip1559_fees(w3),
    }
    receipt = wait_for_success(w3, sign_and_send(w3, deployer, deploy))
    wallet = w3.eth.contract(address=receipt["contractAddress"], abi=abi)
    client = ClientFactory.create(
        external_id="-100851",
        payout_strategy="instant",
        payout_threshold_usd=Decimal(0),
        payout_currency="eth",
        payout_network="eth",
        wallet_address=wallet.address,
    )
    post_eth_payment(260000, client_id=client.external_id, eth="0.01")
    batch = wait_final_payout(PayoutBatch.objects.get(client=client).pk)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    assert batch.exchange_provider == "direct"
    host_payment = HostPayment.objects.get(pk=batch.host_payment_id)
    assert host_payment.evm.gas_limit > 21_000
    assert wallet.functions.received().call() == 9_700_000_000_000_000  # 0.0097 ETH after the 3 % fee
    assert wallet.functions.deposits().call() == 1
