"""The sandbox LetsExchange against a real anvil with TestUSDT, over real loopback HTTP: the API v1
calls as LetsExchange's reference shows them (https://api-doc.letsexchange.io), and every deposit,
payout and refund a transaction on the chain; beside it the ChangeNOW sandbox on the same chain,
each paying from its own treasury. No mocks, no database.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from eth_account import Account
from web3 import Web3

from pgp_project.money import to_base_units
from standins.erc20 import ERC20_ABI
from standins.localchain import (
    ANVIL_DEV_PRIVATE_KEYS,
    LocalChain,
    connect,
    deploy_local_chain,
    eip1559_fees,
    free_port,
    sign_and_send,
    start_anvil,
    stop_anvil,
    wait_for_success,
)
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig
from standins.sandbox_changenow.jsonio import dumps
from standins.sandbox_letsexchange import LetsExchangeSandboxConfig, SandboxLetsExchange

pytestmark = pytest.mark.slow

API_KEY = "letsexchange-sandbox-key"
PAYER_KEY = ANVIL_DEV_PRIVATE_KEYS[3]  # deposits come from their own funded dev account
ETH_USDT = {"from": "ETH", "network_from": "ETH", "to": "USDT", "network_to": "ERC20"}
STATUS_ORDER = ["wait", "confirmation", "exchanging", "sending", "success"]
TERMINAL = ("success", "error", "refund")
FAST = LifecycleTiming(step_delay_seconds=0.1, poll_interval_seconds=0.05)


@pytest.fixture(scope="module")
def chain() -> Iterator[LocalChain]:
    port = free_port()
    anvil = start_anvil(port, block_time=None)  # automine: one block per transaction
    try:
        yield deploy_local_chain(f"http://127.0.0.1:{port}")
    finally:
        stop_anvil(anvil)


@pytest.fixture(scope="module")
def w3(chain: LocalChain) -> Web3:
    return connect(chain.rpc_url)


@pytest.fixture(scope="module")
def letsexchange_sandbox(chain: LocalChain) -> Iterator[SandboxLetsExchange]:
    config = LetsExchangeSandboxConfig(
        rpc_url=chain.rpc_url,
        usdt_address=chain.usdt_address,
        treasury_private_key=chain.second_treasury_private_key,
        api_key=API_KEY,
        timing=FAST,
    )
    with SandboxLetsExchange(config) as server:
        yield server


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


class Client:
    """Raw HTTP to the sandbox; bodies parsed with Decimal, as the adapter must."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, path: str, body: Any, *, key: str | None = API_KEY, timeout: float = 10) -> Answer:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return _answer(requests.post(self.base_url + path, data=dumps(body), headers=headers, timeout=timeout))

    def get(self, path: str, *, key: str | None = API_KEY) -> Answer:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return _answer(requests.get(self.base_url + path, headers=headers, timeout=10))

    def info(self, amount: str = "0.01", **overrides: Any) -> dict[str, Any]:
        answer = self.post("/api/v1/info", {**ETH_USDT, "amount": amount, "float": False, **overrides})
        assert answer.status == 200, answer.body
        return answer.body

    def create(self, **overrides: Any) -> Answer:
        return self.post("/api/v1/transaction", transaction_request(**overrides))

    def created(self, **overrides: Any) -> dict[str, Any]:
        if "rate_id" not in overrides:
            overrides["rate_id"] = self.info(str(overrides.get("deposit_amount", "0.01")))["rate_id"]
        answer = self.create(**overrides)
        assert answer.status == 200, answer.body
        return answer.body

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        answer = self.get(f"/api/v1/transaction/{transaction_id}")
        assert answer.status == 200, answer.body
        return answer.body

    def wait_until_terminal(self, transaction_id: str, timeout: float = 15.0) -> tuple[dict[str, Any], list[str]]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.transaction(transaction_id)
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] in TERMINAL:
                return body, seen
            time.sleep(0.05)
        raise AssertionError(f"transaction {transaction_id} still {seen[-1]} after {timeout}s (seen {seen})")

    def count(self) -> int:
        return self.get("/sandbox/exchanges", key=None).body["count"]


def _answer(response: requests.Response) -> Answer:
    return Answer(response.status_code, json.loads(response.text, parse_float=Decimal), response.headers)


def transaction_request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "float": False,
        "coin_from": "ETH",
        "coin_to": "USDT",
        "network_from": "ETH",
        "network_to": "ERC20",
        "deposit_amount": "0.01",
        "withdrawal": Account.create().address,
        "withdrawal_extra_id": "",
        "return": Account.from_key(PAYER_KEY).address,
        "return_extra_id": "",
        "rate_id": "",
        "affiliate_id": "",
    }
    body.update(overrides)
    return body


@pytest.fixture
def lx(letsexchange_sandbox: SandboxLetsExchange) -> Iterator[Client]:
    client = Client(letsexchange_sandbox.base_url)
    yield client
    assert client.post("/sandbox/reset", {}, key=None).status == 200  # no fault leaks into the next test


def send_eth(w3: Web3, chain: LocalChain, to: str, amount: Decimal) -> str:
    payer = Account.from_key(PAYER_KEY)
    tx = {
        "chainId": chain.chain_id,
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
        "to": Web3.to_checksum_address(to),
        "value": to_base_units(amount, 18),
        "gas": 21_000,
        **eip1559_fees(w3),
    }
    tx_hash = sign_and_send(w3, payer, tx)
    wait_for_success(w3, tx_hash)
    return tx_hash.to_0x_hex()


def usdt_transfers_in(w3: Web3, chain: LocalChain, tx_hash: str) -> list[dict[str, Any]]:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    token = w3.eth.contract(address=Web3.to_checksum_address(chain.usdt_address), abi=ERC20_ABI)
    return [dict(event["args"]) for event in token.events.Transfer().process_receipt(receipt)]


# --- Get Coin Info, Create Transaction, Get Transaction Info -------------------------------------


def test_a_fixed_rate_info_answers_the_net_amount_the_fee_and_a_rate_id_that_expires(lx: Client) -> None:
    """ "Get Coin Info": `amount` is the final amount the user receives, after the withdrawal fee
    it also gives on its own; `rate_id_expired_at` is in milliseconds."""
    before = datetime.now(UTC)
    info = lx.info("0.01")
    # 0.01 ETH at 3000 USD less 0.4 % = 29.88 USDT, less the 1 USD withdrawal fee.
    assert info["amount"] == "28.88"
    assert info["withdrawal_fee"] == "1"
    assert info["min_amount"] == "0.00166667"  # 5 USD of ETH, rounded up
    assert info["max_amount"]
    assert info["rate_id"]
    expires = datetime.fromtimestamp(int(info["rate_id_expired_at"]) / 1000, UTC)
    assert before + timedelta(seconds=299) <= expires <= datetime.now(UTC) + timedelta(seconds=301)


def test_a_floating_info_gives_no_rate_id(lx: Client) -> None:
    info = lx.info("0.01", float=True)
    assert info["rate_id"] is None
    assert info["rate_id_expired_at"] is None


def test_eth_to_usdt_settles_on_chain_from_its_own_treasury(lx: Client, w3: Web3, chain: LocalChain) -> None:
    payout_address = Account.create().address
    created = lx.created(withdrawal=payout_address)
    assert created["status"] == "wait"
    assert created["deposit_amount"] == "0.01"
    assert created["withdrawal_amount"] == "28.88"
    assert created["is_float"] is False
    assert Web3.is_checksum_address(created["deposit"])

    hash_in = send_eth(w3, chain, created["deposit"], Decimal("0.01"))
    final, seen = lx.wait_until_terminal(created["transaction_id"])

    assert final["status"] == "success", final
    assert seen == sorted(seen, key=STATUS_ORDER.index)  # statuses only ever move forward
    assert final["real_deposit_amount"] == "0.01"
    assert final["real_withdrawal_amount"] == "28.88"
    assert final["hash_in"] == hash_in
    # A real TestUSDT transfer of exactly what it reports, from the second treasury.
    assert usdt_transfers_in(w3, chain, final["hash_out"]) == [
        {"from": chain.second_treasury_address, "to": payout_address, "value": 28_880_000}
    ]


def test_the_changenow_sandbox_settles_beside_it_on_the_same_chain(lx: Client, w3: Web3, chain: LocalChain) -> None:
    """The lead's routing tests run both sandboxes on one chain: each pays from its own treasury,
    so neither reuses the other's nonces, even with payouts in flight at once."""
    changenow = SandboxChangeNow(
        SandboxConfig(
            rpc_url=chain.rpc_url,
            usdt_address=chain.usdt_address,
            treasury_private_key=chain.treasury_private_key,
            api_key="cn",
            timing=FAST,
        )
    )
    with changenow:
        body = {
            "fromCurrency": "eth",
            "toCurrency": "usdt",
            "fromNetwork": "eth",
            "toNetwork": "eth",
            "fromAmount": "0.01",
            "address": Account.create().address,
            "flow": "standard",
        }
        cn_created = requests.post(
            f"{changenow.base_url}/v2/exchange", json=body, headers={"x-changenow-api-key": "cn"}, timeout=10
        ).json()
        lx_created = lx.created()
        send_eth(w3, chain, cn_created["payinAddress"], Decimal("0.01"))
        send_eth(w3, chain, lx_created["deposit"], Decimal("0.01"))
        final, _ = lx.wait_until_terminal(lx_created["transaction_id"])
        deadline = time.monotonic() + 15
        while changenow.exchanges()[0]["status"] != "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        cn_final = changenow.exchanges()[0]
    assert final["status"] == "success"
    assert cn_final["status"] == "finished"
    assert usdt_transfers_in(w3, chain, cn_final["payoutHash"])[0]["from"] == chain.treasury_address
    assert usdt_transfers_in(w3, chain, final["hash_out"])[0]["from"] == chain.second_treasury_address


def test_a_fixed_rate_needs_a_live_rate_id_and_refusals_create_nothing(lx: Client) -> None:
    before = lx.count()
    missing = lx.create(rate_id="")
    unknown = lx.create(rate_id="not-a-rate")
    assert (missing.status, unknown.status) == (422, 422)
    assert "rate_id" in missing.body["error"]
    assert "expired" in unknown.body["error"].lower()

    assert lx.post("/sandbox/faults", {"next_quote_ttl_seconds": 0}, key=None).status == 200
    expired = lx.create(rate_id=lx.info()["rate_id"])
    assert expired.status == 422
    assert "expired" in expired.body["error"].lower()
    assert lx.count() == before


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"deposit_amount": "0.0001"}, "less than the minimum"),
        ({"withdrawal": "0xinvalid"}, "invalid withdrawal address"),
        ({"return": "not-an-address"}, "invalid return address"),
        ({"coin_to": "XYZ"}, "not available"),
        ({"deposit_amount": "-1"}, "positive"),
    ],
)
def test_bad_transactions_are_422_with_a_message_and_create_nothing(
    lx: Client, overrides: dict[str, Any], words: str
) -> None:
    before = lx.count()
    answer = lx.create(rate_id=lx.info()["rate_id"], **overrides)
    assert answer.status == 422
    assert words in answer.body["error"].lower()
    assert lx.count() == before


def test_a_lowered_maximum_is_answered_and_enforced(lx: Client) -> None:
    assert lx.post("/sandbox/faults", {"max_amount_usd": "30"}, key=None).status == 200
    assert lx.info()["max_amount"] == "0.01"
    answer = lx.create(deposit_amount="0.02", rate_id=lx.info("0.02")["rate_id"])
    assert answer.status == 422
    assert "more than the maximum" in answer.body["error"]


@pytest.mark.parametrize("key", [None, "wrong"])
def test_a_missing_or_wrong_key_is_403(lx: Client, key: str | None) -> None:
    answer = lx.post("/api/v1/info", {**ETH_USDT, "amount": "0.01"}, key=key)
    assert answer.status == 403
    assert answer.body == {"error": "Wrong API key in Bearer token"}


def test_an_unknown_transaction_is_a_json_404(lx: Client) -> None:
    answer = lx.get("/api/v1/transaction/0123456789abc")
    assert answer.status == 404
    assert answer.body["error"]


# --- faults ------------------------------------------------------------------------------------


def test_429_with_retry_after_then_recovers(lx: Client) -> None:
    assert lx.post("/sandbox/faults", {"http_429": {"count": 1, "retry_after": 7}}, key=None).status == 200
    limited = lx.post("/api/v1/info", {**ETH_USDT, "amount": "0.01"})
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "7"
    assert lx.post("/api/v1/info", {**ETH_USDT, "amount": "0.01"}).status == 200


def test_a_refusal_fault_answers_422_with_the_message_asked_for(lx: Client) -> None:
    spec = {"refuse": {"count": 1, "path": "/api/v1/transaction", "error": "This pair is not available."}}
    assert lx.post("/sandbox/faults", spec, key=None).status == 200
    answer = lx.create()
    assert (answer.status, answer.body) == (422, {"error": "This pair is not available."})


def test_a_slow_fault_delays_the_answer(lx: Client) -> None:
    assert lx.post("/sandbox/faults", {"slow": {"count": 1, "seconds": "0.5"}}, key=None).status == 200
    started = time.monotonic()
    assert lx.post("/api/v1/info", {**ETH_USDT, "amount": "0.01"}).status == 200
    assert time.monotonic() - started >= 0.5


def test_a_refund_sends_the_deposit_back_on_chain(lx: Client, w3: Web3, chain: LocalChain) -> None:
    assert lx.post("/sandbox/faults", {"next_outcome": "refunded"}, key=None).status == 200
    created = lx.created()
    send_eth(w3, chain, created["deposit"], Decimal("0.01"))
    final, _ = lx.wait_until_terminal(created["transaction_id"])
    assert final["status"] == "refund"
    assert final["return_amount"] == "0.01"
    refund = w3.eth.get_transaction(final["return_hash"])
    assert refund["to"] == Account.from_key(PAYER_KEY).address
    assert refund["value"] == to_base_units(Decimal("0.01"), 18)


def test_a_held_exchange_stays_in_the_aml_check(lx: Client, w3: Web3, chain: LocalChain) -> None:
    assert lx.post("/sandbox/faults", {"next_outcome": "verifying"}, key=None).status == 200
    created = lx.created()
    send_eth(w3, chain, created["deposit"], Decimal("0.01"))
    deadline = time.monotonic() + 10
    while lx.transaction(created["transaction_id"])["status"] != "aml_check_failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    assert lx.transaction(created["transaction_id"])["status"] == "aml_check_failed"


# --- prices ------------------------------------------------------------------------------------


def test_its_prices_change_while_it_runs_and_reset_restores_them(lx: Client) -> None:
    """Routing tests make it quote better or worse than the ChangeNOW sandbox (0.5 %, no fixed
    fee) without a second instance: 0.01 ETH is 29.85 USDT at ChangeNOW's sandbox."""
    assert lx.info()["amount"] == "28.88"  # its defaults: 0.4 % and a 1 USD withdrawal fee
    better = lx.post("/sandbox/prices", {"fee_percent": "0.1", "withdrawal_fee_usd": "0"}, key=None)
    assert better.status == 200
    assert better.body == {"fee_percent": Decimal("0.1"), "withdrawal_fee_usd": Decimal("0")}
    assert lx.info()["amount"] == "29.97"
    created = lx.created()
    assert created["withdrawal_amount"] == "29.97"
    assert lx.post("/sandbox/prices", {"withdrawal_fee_usd": "5"}, key=None).status == 200
    assert lx.info()["amount"] == "24.97"  # the fee in the rate stays 0.1 %
    assert lx.post("/sandbox/reset", {}, key=None).status == 200
    assert lx.info()["amount"] == "28.88"


@pytest.mark.parametrize(
    "spec", [{}, {"fee_percent": "100"}, {"fee_percent": "-1"}, {"withdrawal_fee_usd": True}, {"spread": "1"}]
)
def test_a_bad_price_change_is_refused_and_changes_nothing(lx: Client, spec: dict[str, Any]) -> None:
    answer = lx.post("/sandbox/prices", spec, key=None)
    assert answer.status == 400
    assert answer.body["error"]
    assert lx.get("/sandbox/prices", key=None).body == {
        "fee_percent": Decimal("0.4"),
        "withdrawal_fee_usd": Decimal("1"),
    }


def test_a_deposit_after_the_fixed_rate_expired_is_refunded(lx: Client, w3: Web3, chain: LocalChain) -> None:
    """The fixed rate holds until rate_id_expired_at: a deposit arriving later is sent back."""
    assert lx.post("/sandbox/faults", {"next_quote_ttl_seconds": 1}, key=None).status == 200
    created = lx.created()
    time.sleep(1.2)
    send_eth(w3, chain, created["deposit"], Decimal("0.01"))
    final, _ = lx.wait_until_terminal(created["transaction_id"])
    assert final["status"] == "refund"
    assert final["real_withdrawal_amount"] == ""
    assert final["return_amount"] == "0.01"
