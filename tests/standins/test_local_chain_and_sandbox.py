"""The local stand-ins against each other: a real anvil with TestUSDT and the sandbox ChangeNOW.

No mocks: anvil runs as a process on a free loopback port, the sandbox serves real HTTP in this
process, and every deposit, payout and refund is a transaction on that chain. No database needed.
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
    HOT_WALLET_USDT_MINT,
    TREASURY_USDT_MINT,
    LocalChain,
    connect,
    deploy_local_chain,
    eip1559_fees,
    free_port,
    mine_blocks,
    sign_and_send,
    start_anvil,
    stop_anvil,
    wait_for_success,
)
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig
from standins.sandbox_changenow.jsonio import dumps

pytestmark = pytest.mark.slow

API_KEY = "sandbox-test-key"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
TRON_ADDRESS = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
STATUS_ORDER = ["new", "waiting", "confirming", "exchanging", "sending", "finished"]


# --- fixtures -------------------------------------------------------------------------------


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
def sandbox(chain: LocalChain) -> Iterator[SandboxChangeNow]:
    config = SandboxConfig(
        rpc_url=chain.rpc_url,
        usdt_address=chain.usdt_address,
        treasury_private_key=chain.treasury_private_key,
        api_key=API_KEY,
        eth_usd=Decimal("3000"),
        fee_percent=Decimal("0.5"),
        timing=LifecycleTiming(step_delay_seconds=0.1, poll_interval_seconds=0.05),
    )
    server = SandboxChangeNow(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


class SandboxClient:
    """Raw HTTP to the sandbox; bodies parsed with Decimal, as the project's client must."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, params: dict[str, str] | None = None, *, key: str | None = API_KEY) -> Answer:
        headers = {"x-changenow-api-key": key} if key is not None else {}
        return _answer(requests.get(self.base_url + path, params=params, headers=headers, timeout=10))

    def post(self, path: str, body: Any, *, key: str | None = API_KEY, timeout: float = 10) -> Answer:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["x-changenow-api-key"] = key
        return _answer(requests.post(self.base_url + path, data=dumps(body), headers=headers, timeout=timeout))

    def create_exchange(self, **overrides: Any) -> dict[str, Any]:
        answer = self.post("/v2/exchange", exchange_request(**overrides))
        assert answer.status == 200, answer.body
        return answer.body

    def by_id(self, exchange_id: str) -> dict[str, Any]:
        answer = self.get("/v2/exchange/by-id", {"id": exchange_id})
        assert answer.status == 200, answer.body
        return answer.body

    def wait_until_terminal(self, exchange_id: str, timeout: float = 15.0) -> tuple[dict[str, Any], list[str]]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.by_id(exchange_id)
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] in ("finished", "failed", "refunded"):
                return body, seen
            time.sleep(0.05)
        raise AssertionError(f"exchange {exchange_id} still {seen[-1]} after {timeout}s (seen {seen})")

    def exchange_count(self) -> int:
        return self.get("/sandbox/exchanges", key=None).body["count"]


def _answer(response: requests.Response) -> Answer:
    return Answer(response.status_code, json.loads(response.text, parse_float=Decimal), response.headers)


@pytest.fixture
def cn(sandbox: SandboxChangeNow) -> Iterator[SandboxClient]:
    client = SandboxClient(sandbox.base_url)
    yield client
    assert client.post("/sandbox/reset", {}, key=None).status == 200  # no fault leaks into the next test


def exchange_request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fromCurrency": "eth",
        "toCurrency": "usdt",
        "fromNetwork": "eth",
        "toNetwork": "eth",
        "fromAmount": Decimal("0.01"),
        "toAmount": "",
        "address": Account.create().address,
        "extraId": "",
        "refundAddress": "",
        "refundExtraId": "",
        "userId": "",
        "payload": "",
        "contactEmail": "",
        "flow": "fixed-rate",
        "type": "direct",
        "rateId": "",
    }
    body.update(overrides)
    return body


# --- chain helpers --------------------------------------------------------------------------


def send_eth(w3: Web3, chain: LocalChain, to: str, amount: Decimal) -> str:
    hot_wallet = Account.from_key(chain.hot_wallet_private_key)
    tx = {
        "chainId": chain.chain_id,
        "nonce": w3.eth.get_transaction_count(hot_wallet.address, "pending"),
        "to": Web3.to_checksum_address(to),
        "value": to_base_units(amount, 18),
        "gas": 21_000,
        **eip1559_fees(w3),
    }
    tx_hash = sign_and_send(w3, hot_wallet, tx)
    wait_for_success(w3, tx_hash)
    return tx_hash.to_0x_hex()


def send_usdt(w3: Web3, chain: LocalChain, to: str, amount: Decimal) -> str:
    hot_wallet = Account.from_key(chain.hot_wallet_private_key)
    token = usdt(w3, chain)
    tx = token.functions.transfer(Web3.to_checksum_address(to), to_base_units(amount, 6)).build_transaction(
        {
            "chainId": chain.chain_id,
            "from": hot_wallet.address,
            "nonce": w3.eth.get_transaction_count(hot_wallet.address, "pending"),
            **eip1559_fees(w3),
        }
    )
    tx_hash = sign_and_send(w3, hot_wallet, tx)
    wait_for_success(w3, tx_hash)
    return tx_hash.to_0x_hex()


def usdt(w3: Web3, chain: LocalChain) -> Any:
    return w3.eth.contract(address=Web3.to_checksum_address(chain.usdt_address), abi=ERC20_ABI)


def usdt_transfers_in(w3: Web3, chain: LocalChain, tx_hash: str) -> list[dict[str, Any]]:
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    return [dict(event["args"]) for event in usdt(w3, chain).events.Transfer().process_receipt(receipt)]


# --- the chain ------------------------------------------------------------------------------


def test_usdt_has_six_decimals_and_the_minted_balances(w3: Web3, chain: LocalChain) -> None:
    token = usdt(w3, chain)
    assert token.functions.name().call() == "Test USDT"
    assert token.functions.symbol().call() == "USDT"
    assert token.functions.decimals().call() == 6
    assert token.functions.totalSupply().call() == to_base_units(HOT_WALLET_USDT_MINT + 2 * TREASURY_USDT_MINT, 6)
    # The mints, read from the chain's history so later tests' transfers do not matter.
    mints = token.events.Transfer().get_logs(from_block=0, argument_filters={"from": ZERO_ADDRESS})
    assert {(event["args"]["to"], event["args"]["value"]) for event in mints} == {
        (chain.hot_wallet_address, 1_000_000 * 10**6),
        (chain.treasury_address, 10_000_000 * 10**6),
        # A second sandbox exchange's treasury (the LetsExchange one), so the two never share nonces.
        (chain.second_treasury_address, 10_000_000 * 10**6),
    }
    assert chain.hot_wallet_address == Account.from_key(chain.hot_wallet_private_key).address
    assert chain.hot_wallet_address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's account 0


def test_usdt_transfer_beyond_balance_reverts(w3: Web3, chain: LocalChain) -> None:
    stranger = Account.create()
    calldata = (
        usdt(w3, chain)
        .functions.transfer(chain.hot_wallet_address, 1)
        .build_transaction(
            {"from": stranger.address, "gas": 100_000, "nonce": 0, "chainId": chain.chain_id, **eip1559_fees(w3)}
        )
    )
    with pytest.raises(Exception, match="insufficient balance"):
        w3.eth.call({"from": stranger.address, "to": chain.usdt_address, "data": calldata["data"]})


def test_mine_blocks_advances_the_chain(w3: Web3) -> None:
    before = w3.eth.block_number
    mine_blocks(w3, 3)
    assert w3.eth.block_number == before + 3


# --- exchanges settled on chain -------------------------------------------------------------


def test_eth_to_usdt_exchange_finishes_with_an_on_chain_usdt_payout(
    cn: SandboxClient, w3: Web3, chain: LocalChain
) -> None:
    pair = {"fromCurrency": "eth", "toCurrency": "usdt", "fromNetwork": "eth", "toNetwork": "eth", "flow": "fixed-rate"}
    minimum = cn.get("/v2/exchange/min-amount", pair)
    assert minimum.status == 200
    assert minimum.body == {**pair, "minAmount": Decimal("0.00166667")}  # $5 at $3000, rounded up
    estimate = cn.get("/v2/exchange/estimated-amount", {**pair, "fromAmount": "0.0123", "useRateId": "true"})
    assert estimate.status == 200
    assert estimate.body["toAmount"] == Decimal("36.7155")  # 0.0123 * 3000 * 0.995
    assert estimate.body["type"] == "direct"
    assert estimate.body["rateId"]
    assert estimate.body["validUntil"]
    assert estimate.body["warningMessage"] is None

    payout_address = Account.create().address
    created = cn.create_exchange(fromAmount="0.0123", address=payout_address, rateId=estimate.body["rateId"])
    assert created["fromAmount"] == Decimal("0.0123")
    assert created["toAmount"] == Decimal("36.7155")
    assert created["payoutAddress"] == payout_address
    assert Web3.is_checksum_address(created["payinAddress"])

    payin_hash = send_eth(w3, chain, created["payinAddress"], created["fromAmount"])
    final, seen = cn.wait_until_terminal(created["id"])

    assert final["status"] == "finished", final
    assert seen == sorted(seen, key=STATUS_ORDER.index)  # statuses only ever move forward
    assert final["amountFrom"] == Decimal("0.0123")
    assert final["amountTo"] == Decimal("36.7155")
    assert final["payinHash"] == payin_hash
    assert final["depositReceivedAt"] is not None
    assert final["toLegacyTicker"] == "usdterc20"
    # The payout is a real TestUSDT transfer of exactly amountTo, from the treasury to the payout address.
    assert usdt_transfers_in(w3, chain, final["payoutHash"]) == [
        {"from": chain.treasury_address, "to": payout_address, "value": 36_715_500}
    ]
    assert usdt(w3, chain).functions.balanceOf(payout_address).call() == 36_715_500


def test_a_deposit_other_than_expected_finishes_on_what_arrived(cn: SandboxClient, w3: Web3, chain: LocalChain) -> None:
    created = cn.create_exchange(fromAmount=Decimal("0.02"))
    send_eth(w3, chain, created["payinAddress"], Decimal("0.015"))
    final, _ = cn.wait_until_terminal(created["id"])
    assert final["status"] == "finished"
    assert final["expectedAmountFrom"] == Decimal("0.02")
    assert final["amountFrom"] == Decimal("0.015")
    assert final["amountTo"] == Decimal("44.775")  # 0.015 * 3000 * 0.995, at the fixed rate


def test_a_deposit_waits_for_its_confirmations(chain: LocalChain, w3: Web3) -> None:
    config = SandboxConfig(
        rpc_url=chain.rpc_url,
        usdt_address=chain.usdt_address,
        treasury_private_key=chain.treasury_private_key,
        api_key=API_KEY,
        timing=LifecycleTiming(step_delay_seconds=0.05, poll_interval_seconds=0.05, deposit_confirmations=3),
    )
    with SandboxChangeNow(config) as strict:
        client = SandboxClient(strict.base_url)
        created = client.create_exchange()
        send_eth(w3, chain, created["payinAddress"], created["fromAmount"])
        time.sleep(0.5)  # ten polls: automine adds no block while idle, so one confirmation stays one
        assert client.by_id(created["id"])["status"] == "waiting"
        mine_blocks(w3, 2)
        final, _ = client.wait_until_terminal(created["id"])
        assert final["status"] == "finished"


def test_usdt_to_trx_exchange_funded_by_erc20_transfer_finishes_with_a_simulated_hash(
    cn: SandboxClient, w3: Web3, chain: LocalChain
) -> None:
    created = cn.create_exchange(
        fromCurrency="usdt", fromNetwork="eth", toCurrency="trx", toNetwork="trx", fromAmount="20", address=TRON_ADDRESS
    )
    assert created["toAmount"] == Decimal("165.833333")  # 20 / 0.12 * 0.995, 6 dp rounded down
    payin_hash = send_usdt(w3, chain, created["payinAddress"], Decimal("20"))

    final, _ = cn.wait_until_terminal(created["id"])

    assert final["status"] == "finished", final
    assert final["payinHash"] == payin_hash
    assert final["amountFrom"] == Decimal("20")
    assert final["amountTo"] == Decimal("165.833333")
    assert len(final["payoutHash"]) == 64
    assert int(final["payoutHash"], 16) >= 0


def test_next_outcome_failed_ends_the_funded_exchange_in_failed(cn: SandboxClient, w3: Web3, chain: LocalChain) -> None:
    assert cn.post("/sandbox/faults", {"next_outcome": "failed"}, key=None).status == 200
    payout_address = Account.create().address
    created = cn.create_exchange(address=payout_address)
    send_eth(w3, chain, created["payinAddress"], created["fromAmount"])

    final, _ = cn.wait_until_terminal(created["id"])

    assert final["status"] == "failed"
    assert final["amountFrom"] == created["fromAmount"]
    assert final["payoutHash"] is None
    assert usdt(w3, chain).functions.balanceOf(payout_address).call() == 0
    # The fault was one-shot: the next exchange is headed for a normal finish.
    later = cn.create_exchange()
    assert [
        e["sandboxOutcome"] for e in cn.get("/sandbox/exchanges", key=None).body["exchanges"] if e["id"] == later["id"]
    ] == ["finished"]


def test_next_outcome_refunded_sends_the_deposit_back_on_chain(cn: SandboxClient, w3: Web3, chain: LocalChain) -> None:
    assert cn.post("/sandbox/faults", {"next_outcome": "refunded"}, key=None).status == 200
    refund_address = Account.create().address
    created = cn.create_exchange(fromAmount=Decimal("0.01"), refundAddress=refund_address)
    send_eth(w3, chain, created["payinAddress"], Decimal("0.01"))

    final, _ = cn.wait_until_terminal(created["id"])

    assert final["status"] == "refunded"
    assert final["refundAmount"] == Decimal("0.01")
    assert final["payoutHash"] is None
    refund = w3.eth.get_transaction(final["refundHash"])
    assert refund["to"] == refund_address
    assert refund["value"] == 10**16
    assert w3.eth.get_transaction_receipt(final["refundHash"])["status"] == 1
    assert w3.eth.get_balance(refund_address) == 10**16


def test_from_amount_skew_answers_a_different_from_amount_once(cn: SandboxClient) -> None:
    assert cn.post("/sandbox/faults", {"from_amount_skew": "0.000001"}, key=None).status == 200
    skewed = cn.create_exchange(fromAmount="0.01")
    assert skewed["fromAmount"] == Decimal("0.010001")
    assert cn.by_id(skewed["id"])["expectedAmountFrom"] == Decimal("0.010001")
    assert cn.create_exchange(fromAmount="0.01")["fromAmount"] == Decimal("0.01")


# --- injected HTTP faults -------------------------------------------------------------------


def test_http_429_fault_answers_429_with_retry_after_then_recovers(cn: SandboxClient) -> None:
    fault = cn.post("/sandbox/faults", {"http_429": {"count": 2, "retry_after": 3}}, key=None)
    assert fault.status == 200
    params = {"fromCurrency": "eth", "toCurrency": "usdt", "flow": "fixed-rate"}
    for _ in range(2):
        limited = cn.get("/v2/exchange/min-amount", params)
        assert limited.status == 429
        assert limited.headers["Retry-After"] == "3"
        assert limited.body["error"] == "too_many_requests"
    assert cn.get("/v2/exchange/min-amount", params).status == 200


def test_http_500_fault_answers_a_json_500_then_recovers(cn: SandboxClient) -> None:
    before = cn.exchange_count()
    assert cn.post("/sandbox/faults", {"http_500": {"count": 1, "path": "/v2/exchange"}}, key=None).status == 200
    assert cn.get("/v2/validate/address", {"currency": "eth", "address": ZERO_ADDRESS}).status == 200  # other path

    failed = cn.post("/v2/exchange", exchange_request())
    assert failed.status == 500
    assert failed.body["error"] == "internal_error"
    assert cn.exchange_count() == before  # the failed request created nothing
    assert cn.post("/v2/exchange", exchange_request()).status == 200


def test_slow_fault_delays_the_answer_but_still_creates_the_exchange(cn: SandboxClient) -> None:
    before = cn.exchange_count()
    assert (
        cn.post("/sandbox/faults", {"slow": {"count": 1, "seconds": "1", "path": "/v2/exchange"}}, key=None).status
        == 200
    )
    with pytest.raises(requests.Timeout):
        cn.post("/v2/exchange", exchange_request(), timeout=0.3)
    # The ambiguous case: the caller timed out, yet the exchange exists once the stall ends.
    deadline = time.monotonic() + 5
    while cn.exchange_count() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cn.exchange_count() == before + 1


def test_reset_clears_every_fault(cn: SandboxClient) -> None:
    cn.post("/sandbox/faults", {"http_500": {"count": 5}, "next_outcome": "refunded"}, key=None)
    cleared = cn.post("/sandbox/reset", {}, key=None)
    assert cleared.body == {
        "next_outcome": None,
        "from_amount_skew": None,
        "next_quote_ttl_seconds": None,
        "answer_payout_address": None,
        "reported_amount_to_skew": None,
        "reported_payout_hash": None,
        "max_amount_usd": None,
    }
    assert cn.get("/v2/exchange/by-id", {"id": "ffffffffffffff"}).status == 404


def test_an_unknown_fault_is_refused(cn: SandboxClient) -> None:
    answer = cn.post("/sandbox/faults", {"http_418": {"count": 1}}, key=None)
    assert answer.status == 400
    assert answer.body["error"] == "not_valid_params"


# --- validation and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "address", "valid"),
    [
        ("eth", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", True),
        ("usdt", "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266", True),  # all lowercase: no checksum claimed
        ("eth", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267", False),  # broken EIP-55 checksum
        ("eth", "0x1234", False),
        ("btc", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", True),
        ("trx", TRON_ADDRESS, True),
        ("trx", "not-a-tron-address", False),
        ("btc", "bc1qinvalidaddressforcedbythetests0000000", False),  # "invalid" always fails
    ],
)
def test_validate_address(cn: SandboxClient, currency: str, address: str, valid: bool) -> None:
    answer = cn.get("/v2/validate/address", {"currency": currency, "address": address})
    assert answer.status == 200
    assert answer.body["result"] is valid
    assert (answer.body["message"] is None) is valid


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_api_key_is_401(cn: SandboxClient, key: str | None) -> None:
    before = cn.exchange_count()
    for answer in (
        cn.get("/v2/exchange/min-amount", {"fromCurrency": "eth", "toCurrency": "usdt"}, key=key),
        cn.post("/v2/exchange", exchange_request(), key=key),
    ):
        assert answer.status == 401
        assert answer.body["error"] == "unauthorized"
    assert cn.exchange_count() == before


def test_an_unknown_exchange_id_is_a_json_404(cn: SandboxClient) -> None:
    answer = cn.get("/v2/exchange/by-id", {"id": "00000000000000"})
    assert answer.status == 404
    assert answer.body["error"] == "exchange_not_found"
    assert answer.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"fromCurrency": ""}, "not_valid_params"),
        ({"fromAmount": "-1"}, "not_valid_params"),
        ({"fromAmount": "NaN"}, "not_valid_params"),
        ({"fromAmount": "0.0001"}, "out_of_range"),
        ({"address": "0xinvalid"}, "not_valid_address"),
        ({"refundAddress": "bc1qnotanethaddress"}, "not_valid_refund_address"),
        ({"toCurrency": "nosuchcoin"}, "pair_is_inactive"),
        ({"rateId": "no-such-rate"}, "rate_id_not_found_or_expired"),
    ],
)
def test_bad_exchange_requests_are_400_and_create_nothing(
    cn: SandboxClient, overrides: dict[str, Any], error: str
) -> None:
    before = cn.exchange_count()
    answer = cn.post("/v2/exchange", exchange_request(**overrides))
    assert answer.status == 400
    assert answer.body["error"] == error
    assert answer.body["message"]
    assert cn.exchange_count() == before


def test_a_refusal_fault_answers_the_error_code_asked_for(cn: SandboxClient) -> None:
    cn.post(
        "/sandbox/faults",
        {"refuse": {"count": 1, "path": "/v2/exchange/estimated-amount", "error": "out_of_range"}},
        key=None,
    )
    params = {"fromCurrency": "eth", "toCurrency": "usdt", "fromAmount": "0.01", "flow": "fixed-rate"}
    refused = cn.get("/v2/exchange/estimated-amount", params)
    assert (refused.status, refused.body["error"]) == (400, "out_of_range")
    assert cn.get("/v2/exchange/estimated-amount", params).status == 200  # one request only


def test_a_quote_that_expires_at_once_cannot_create_an_exchange(cn: SandboxClient) -> None:
    cn.post("/sandbox/faults", {"next_quote_ttl_seconds": 0}, key=None)
    params = {
        "fromCurrency": "eth",
        "toCurrency": "usdt",
        "fromAmount": "0.01",
        "flow": "fixed-rate",
        "useRateId": "true",
    }
    rate_id = cn.get("/v2/exchange/estimated-amount", params).body["rateId"]
    refused = cn.post("/v2/exchange", exchange_request(rateId=rate_id))
    assert (refused.status, refused.body["error"]) == (400, "rate_id_not_found_or_expired")
    fresh = cn.get("/v2/exchange/estimated-amount", params).body["rateId"]  # the fault was one-shot
    assert cn.post("/v2/exchange", exchange_request(rateId=fresh)).status == 200


def test_a_deposit_after_the_rate_expired_is_refunded(cn: SandboxClient, w3: Web3, chain: LocalChain) -> None:
    cn.post("/sandbox/faults", {"next_quote_ttl_seconds": 1}, key=None)
    params = {
        "fromCurrency": "eth",
        "toCurrency": "usdt",
        "fromAmount": "0.01",
        "flow": "fixed-rate",
        "useRateId": "true",
    }
    rate_id = cn.get("/v2/exchange/estimated-amount", params).body["rateId"]
    created = cn.create_exchange(rateId=rate_id, refundAddress=chain.hot_wallet_address)
    time.sleep(1.5)
    send_eth(w3, chain, created["payinAddress"], Decimal("0.01"))
    final, _ = cn.wait_until_terminal(created["id"])
    assert final["status"] == "refunded"
    assert final["refundHash"]


def test_an_exchange_can_be_held_in_verifying(cn: SandboxClient, w3: Web3, chain: LocalChain) -> None:
    cn.post("/sandbox/faults", {"next_outcome": "verifying"}, key=None)
    created = cn.create_exchange()
    send_eth(w3, chain, created["payinAddress"], Decimal("0.01"))
    deadline = time.monotonic() + 10
    while cn.by_id(created["id"])["status"] != "verifying" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # several watcher ticks: it stays there
    assert cn.by_id(created["id"])["status"] == "verifying"


# --- what ChangeNOW documents, and only that ------------------------------------------------

FIXED_RATE_PAIR = {"fromCurrency": "eth", "toCurrency": "usdt", "fromNetwork": "eth", "toNetwork": "eth"}


def test_only_the_estimate_says_when_the_fixed_rate_expires(cn: SandboxClient) -> None:
    """ChangeNOW API v2 (https://documenter.getpostman.com/view/8180765/SVfTPnM8), "Estimated
    exchange amount": with flow=fixed-rate and useRateId=true the answer carries rateId and
    validUntil. "Create exchange transaction" and "Exchange status" carry no validUntil, so the
    sandbox sends none there either (what production sees)."""
    estimate = cn.get(
        "/v2/exchange/estimated-amount",
        {**FIXED_RATE_PAIR, "flow": "fixed-rate", "fromAmount": "0.01", "useRateId": "true"},
    ).body
    valid_until = datetime.fromisoformat(estimate["validUntil"].replace("Z", "+00:00"))
    assert timedelta(seconds=290) < valid_until - datetime.now(UTC) <= timedelta(seconds=300)
    created = cn.create_exchange(rateId=estimate["rateId"])
    assert "validUntil" not in created
    assert "validUntil" not in cn.by_id(created["id"])


def test_the_range_gives_the_minimum_and_the_maximum_and_both_are_enforced(cn: SandboxClient) -> None:
    """ChangeNOW API v2 (https://documenter.getpostman.com/view/8180765/SVfTPnM8), "Exchange
    range" (GET /v2/exchange/range): the pair, the flow, minAmount and maxAmount; an amount
    outside it is refused with out_of_range ("Errors")."""
    params = {**FIXED_RATE_PAIR, "flow": "fixed-rate"}
    answer = cn.get("/v2/exchange/range", params)
    assert answer.status == 200
    # $5 and $100,000,000 at $3000 per ETH, at 8 decimals: the minimum rounded up, the maximum down.
    assert answer.body == {**params, "minAmount": Decimal("0.00166667"), "maxAmount": Decimal("33333.33333333")}

    assert cn.post("/sandbox/faults", {"max_amount_usd": "30"}, key=None).status == 200
    assert cn.get("/v2/exchange/range", params).body["maxAmount"] == Decimal("0.01")
    over = cn.get("/v2/exchange/estimated-amount", {**params, "fromAmount": "0.010001"})
    assert (over.status, over.body["error"]) == (400, "out_of_range")
    assert "more than maximal" in over.body["message"]
    refused = cn.post("/v2/exchange", exchange_request(fromAmount="0.010001"))
    assert (refused.status, refused.body["error"]) == (400, "out_of_range")
    assert cn.post("/v2/exchange", exchange_request(fromAmount="0.01")).status == 200  # the maximum itself


def test_reported_amount_to_skew_reports_more_than_the_payout_sent(
    cn: SandboxClient, w3: Web3, chain: LocalChain
) -> None:
    """A fault for checking amountTo of "Exchange status" (ChangeNOW API v2,
    https://documenter.getpostman.com/view/8180765/SVfTPnM8) against the payout on chain."""
    cn.post("/sandbox/faults", {"reported_amount_to_skew": "1.5"}, key=None)
    payout_address = Account.create().address
    created = cn.create_exchange(fromAmount="0.01", address=payout_address)
    send_eth(w3, chain, created["payinAddress"], Decimal("0.01"))
    final, _ = cn.wait_until_terminal(created["id"])
    assert final["status"] == "finished"
    assert final["amountTo"] == Decimal("31.35")  # 29.85 sent (0.01 * 3000 * 0.995) + 1.5
    assert usdt_transfers_in(w3, chain, final["payoutHash"]) == [
        {"from": chain.treasury_address, "to": payout_address, "value": 29_850_000}
    ]
    # One exchange only: the next one reports what it sent.
    assert cn.post("/v2/exchange", exchange_request()).status == 200
    assert cn.get("/sandbox/faults", key=None).body["reported_amount_to_skew"] is None
