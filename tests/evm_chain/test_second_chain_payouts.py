"""Direct payouts on a second EVM chain, end to end: a second anvil with its own chain id and its
own TestUSDT, configured as a second PGP_CHAINS entry of the same EVM adapter class. A client paid
in USDT on that chain is paid straight from our hot wallet there: no exchange, one transfer, its
own nonce sequence. The overview shows both wallets, and reconciliation covers both chains and
finds exactly one hand-made foreign transaction on the second."""

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.test import Client as HttpClient
from django.utils import timezone
from eth_account import Account
from web3 import Web3

from console.reconciliation import reconcile
from console.tasks import refresh_hot_wallet
from evm_chain.models import EvmSender
from payments.models import Client, PayoutStrategy
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch
from pgp_project.money import from_base_units, to_base_units
from pgp_project.money_display import format_amount
from standins.demo import SECOND_CHAIN, SECOND_CHAIN_ID, with_second_chain
from standins.erc20 import ERC20_ABI
from standins.localchain import (
    LocalChain,
    deploy_local_chain,
    eip1559_fees,
    free_port,
    sign_and_send,
    start_anvil,
    stop_anvil,
    wait_for_success,
)
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import ipn_body, post_ipn
from ..factories import ClientFactory, StaffUserFactory
from ..flows import wait_final_payout

# A wallet of its own: the local chain funds some anvil accounts (the sandboxes' treasuries).
CLIENT_WALLET = Web3.to_checksum_address("0x000000000000000000000000000000000000c11e")


@pytest.fixture(scope="module")
def second_chain() -> Iterator[LocalChain]:
    port = free_port()
    process = start_anvil(port, block_time=1, chain_id=SECOND_CHAIN_ID)
    try:
        yield deploy_local_chain(f"http://127.0.0.1:{port}")
    finally:
        stop_anvil(process)


def usdt_balance(chain: LocalChain, address: str) -> Decimal:
    token = Web3(Web3.HTTPProvider(chain.rpc_url)).eth.contract(address=chain.usdt_address, abi=ERC20_ABI)
    return from_base_units(token.functions.balanceOf(address).call(), 6)


def pay_credit(payment_id: int, client: Client, usdt: str) -> None:
    body = ipn_body(
        payment_id=payment_id,
        order_id=f"PGP-5|{client.external_id}",
        price_amount=usdt,
        outcome_amount=usdt,
        outcome_currency="usdterc20",
    )
    assert post_ipn(HttpClient(), body).status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_client_paid_in_usdt_on_the_second_chain_is_paid_straight_from_our_wallet_there(
    start_worker: Any,
    local_chain: LocalChain,
    second_chain: LocalChain,
    sandbox: SandboxChangeNow,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Funded by operator top-ups: warn under this much (above what the stand-in mints).
    chains = with_second_chain(settings.PGP_CHAINS, low_usdt_balance="2000000")
    environment = {
        "PGP_CHAINS": json.dumps(chains),
        "POLYGON_RPC_URL": second_chain.rpc_url,
        "POLYGON_USDT_CONTRACT_ADDRESS": second_chain.usdt_address,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings.PGP_CHAINS = chains
    start_worker(**environment)
    requests.post(f"{sandbox.base_url}/sandbox/reset", timeout=5).raise_for_status()
    heads = [
        Web3(Web3.HTTPProvider(c.rpc_url)).eth.get_block("latest")["timestamp"] for c in (local_chain, second_chain)
    ]
    start = max(timezone.now() - timedelta(seconds=2), datetime.fromtimestamp(max(heads) + 1, tz=UTC))
    first_chain_before = usdt_balance(local_chain, CLIENT_WALLET)
    hot_before = usdt_balance(second_chain, second_chain.hot_wallet_address)
    exchanges_before = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"]

    client = ClientFactory.create(
        external_id="-100901",
        payout_strategy=PayoutStrategy.THRESHOLD,
        payout_threshold_usd=Decimal("20.00"),
        payout_currency="usdt",
        payout_network=SECOND_CHAIN,
        wallet_address=CLIENT_WALLET,
    )
    pay_credit(90100, client, "12.00")
    pay_credit(90101, client, "9.50")
    (payout_id,) = check_client_payouts()
    payout = wait_final_payout(payout_id)
    assert payout.status == BatchStatus.COMPLETED, (payout.review_reason, payout.last_error)

    # No exchange: the direct transfer, from our wallet on the second chain, of exactly the credit.
    assert payout.exchange_provider == "direct"
    host_payment = HostPayment.objects.get(pk=payout.host_payment_id)
    assert (host_payment.chain, host_payment.asset, host_payment.status) == (
        SECOND_CHAIN,
        "usdt",
        HostPaymentStatus.CONFIRMED,
    )
    assert host_payment.from_address == second_chain.hot_wallet_address
    assert usdt_balance(second_chain, CLIENT_WALLET) == payout.total_usdt == payout.payout_amount
    assert usdt_balance(second_chain, second_chain.hot_wallet_address) == hot_before - payout.total_usdt
    assert usdt_balance(local_chain, CLIENT_WALLET) == first_chain_before  # nothing on the first chain
    assert requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"] == exchanges_before
    # The same key has its own nonce sequence on each chain.
    assert EvmSender.objects.filter(chain=SECOND_CHAIN, address=second_chain.hot_wallet_address).exists()
    assert not PayoutBatch.objects.exclude(pk=payout.pk).filter(client=client).exists()

    # The overview shows both wallets, each read from its own chain; the second is under its floor.
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        refresh_hot_wallet()
    (low,) = [r.getMessage() for r in caplog.records if "ALERT hot_wallet_low_balance" in r.getMessage()]
    assert f"chain={SECOND_CHAIN} asset=usdt" in low
    assert "floor=2000000" in low
    http = HttpClient()
    http.force_login(StaffUserFactory.create(username="two-chain-operator"))
    html = http.get("/admin/").content.decode()
    for chain, held in ((local_chain, "eth"), (second_chain, SECOND_CHAIN)):
        shown = format_amount(usdt_balance(chain, chain.hot_wallet_address), "USDT")
        assert f'id="hot-wallet-{held}-usdt">{shown}<' in html
    assert f'id="hot-wallet-{SECOND_CHAIN}-usdt-low"' in html
    assert 'id="hot-wallet-eth-usdt-low"' not in html

    # Reconciliation covers both chains: clean, then exactly one foreign send on the second.
    end = timezone.now() + timedelta(seconds=5)
    run = reconcile(start=start, end=end, triggered_by="test")
    assert run.discrepancy_count == 0, run.summary["discrepancies"]
    assert set(run.summary["chains"]) == {"eth", SECOND_CHAIN}
    assert run.summary["chains"][SECOND_CHAIN]["transactions"] == 1
    w3 = Web3(Web3.HTTPProvider(second_chain.rpc_url))
    hot = Account.from_key(second_chain.hot_wallet_private_key)
    foreign = sign_and_send(
        w3,
        hot,
        {
            "chainId": SECOND_CHAIN_ID,
            "nonce": w3.eth.get_transaction_count(hot.address, "pending"),
            "to": "0x000000000000000000000000000000000000dEaD",
            "value": to_base_units(Decimal("0.5"), 18),
            "gas": 21_000,
            **eip1559_fees(w3),  # type: ignore[typeddict-item]
        },
    )
    wait_for_success(w3, foreign)
    later = reconcile(start=start, end=timezone.now() + timedelta(seconds=5), triggered_by="test")
    (item,) = later.summary["discrepancies"]
    assert (item["check"], item["chain"], item["tx_hash"]) == ("chain", SECOND_CHAIN, foreign.to_0x_hex().lower())
    assert "no host payment records" in item["what"]
    assert "0.5 MATIC to 0x000000000000000000000000000000000000dEaD" in item["found"]
