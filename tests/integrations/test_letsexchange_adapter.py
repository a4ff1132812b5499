"""The LetsExchange adapter against its sandbox, over real loopback HTTP: what LetsExchange's API
reference (https://api-doc.letsexchange.io) documents for each call, as the adapter must read it;
each test names its section. Bodies the sandbox would never send come from a small canned server
of this module, also over loopback HTTP.

The exchange created and settled end to end is funded from its own dev account on the session's
anvil chain and paid out in TestUSDT from the sandbox's own treasury.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from integrations.assets import ASSETS, ETH, USDT_ERC20
from integrations.exchange.letsexchange import LetsExchangeExchange
from integrations.exchange.port import (
    AmountRange,
    ExchangeBadResponse,
    ExchangePair,
    ExchangeRef,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeState,
    ExchangeStatus,
    ExchangeUnauthorized,
    ExchangeUnavailable,
    RefusalKind,
)
from pgp_project.money import to_base_units
from pgp_project.operations.transient import TransientError
from standins.erc20 import ERC20_ABI
from standins.localchain import ANVIL_DEV_PRIVATE_KEYS, LocalChain, connect, eip1559_fees, sign_and_send
from standins.localchain import wait_for_success as wait_for_receipt
from standins.sandbox_letsexchange import SandboxLetsExchange

from ..conftest import LETSEXCHANGE_TEST_API_KEY
from ..flows import inject, reset_sandbox, sandbox_exchanges

pytestmark = pytest.mark.slow

KEY_VARIABLE = "LETSEXCHANGE_TEST_API_KEY"
ETH_TO_USDT = ExchangePair(ETH, USDT_ERC20)
PAYER_KEY = ANVIL_DEV_PRIVATE_KEYS[3]  # funds the end-to-end deposits; no other test uses it


def adapter_for(url: str, **options: Any) -> LetsExchangeExchange:
    config = {
        "adapter": "integrations.exchange.letsexchange.LetsExchangeExchange",
        "url": url,
        "api_key_env": KEY_VARIABLE,
        "enabled": True,
        "contact_email": "payouts-ops@example.com",
    }
    return LetsExchangeExchange("letsexchange", config, backoff_base=0.01, **options)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, LETSEXCHANGE_TEST_API_KEY)
    monkeypatch.delenv(f"{KEY_VARIABLE}_FILE", raising=False)


@pytest.fixture
def letsexchange_adapter(letsexchange: SandboxLetsExchange, api_key: None) -> Iterator[LetsExchangeExchange]:
    reset_sandbox(letsexchange)
    yield adapter_for(letsexchange.api_url)
    reset_sandbox(letsexchange)  # no fault leaks into the next test


def request(**overrides: object) -> ExchangeRequest:
    fields: dict[str, object] = {
        "pair": ETH_TO_USDT,
        "from_amount": Decimal("0.01"),
        "payout_address": Account.create().address,
        "refund_address": Account.from_key(PAYER_KEY).address,
        "rate_id": None,
        "reference": "conversion-1",
    }
    fields.update(overrides)
    return ExchangeRequest(**fields)


def quoted_request(adapter: LetsExchangeExchange, **overrides: object) -> ExchangeRequest:
    amount = overrides.get("from_amount", Decimal("0.01"))
    assert isinstance(amount, Decimal)
    return request(rate_id=adapter.estimate(ETH_TO_USDT, amount).rate_id, **overrides)


def send_eth(chain: LocalChain, to: str, amount: Decimal) -> str:
    w3 = connect(chain.rpc_url)
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
    wait_for_receipt(w3, tx_hash, timeout=30)
    return tx_hash.to_0x_hex()


def wait_for(adapter: LetsExchangeExchange, exchange_id: str, *statuses: ExchangeStatus) -> ExchangeState:
    deadline = time.monotonic() + 30
    while True:
        state = adapter.status(ExchangeRef(exchange_id))
        if state.status in statuses or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


# --- the port's calls, as the reference documents them ------------------------------------------


def test_supports_the_pairs_its_code_table_names() -> None:
    adapter = adapter_for("http://127.0.0.1:9")  # nothing is asked over HTTP
    assert adapter.supports(ETH_TO_USDT)
    assert adapter.supports(ExchangePair(USDT_ERC20, ASSETS[("trx", "usdt")]))
    assert not adapter.supports(ExchangePair(USDT_ERC20, USDT_ERC20))  # the direct transfer's
    assert not adapter.supports(ExchangePair(USDT_ERC20, ASSETS[("xmr", "xmr")]))  # not in its table


def test_the_estimate_is_net_of_every_fee_and_keeps_its_rate_expiry(letsexchange_adapter: LetsExchangeExchange) -> None:
    """ "Get Coin Info" with "float": false: `amount` is the final amount after the withdrawal fee;
    `rate_id_expired_at` (milliseconds) is when the fixed rate expires."""
    before = datetime.now(UTC)
    quote = letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01"))
    # 0.01 ETH at 3000 USD, less the sandbox's 0.4 % and its 1 USD withdrawal fee.
    assert quote.to_amount == Decimal("28.88")
    assert quote.rate_id
    assert quote.valid_until is not None
    assert before + timedelta(seconds=299) <= quote.valid_until <= datetime.now(UTC) + timedelta(seconds=301)


def test_the_range_and_an_estimate_outside_it(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange
) -> None:
    """ "Get Coin Info" gives the pair's min_amount and max_amount with any quote; an amount
    outside them is refused as out of range, whatever the rest of the answer says."""
    assert letsexchange_adapter.amount_range(ETH_TO_USDT).minimum == Decimal("0.00166667")  # 5 USD of ETH
    inject(letsexchange, {"max_amount_usd": "30"})
    assert letsexchange_adapter.amount_range(ETH_TO_USDT) == AmountRange(Decimal("0.00166667"), Decimal("0.01"))
    for amount in (Decimal("0.001"), Decimal("0.02")):
        with pytest.raises(ExchangeRefused) as refused:
            letsexchange_adapter.estimate(ETH_TO_USDT, amount)
        assert refused.value.kind == RefusalKind.OUT_OF_RANGE


def test_an_exchange_created_and_settled_on_chain(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange, local_chain: LocalChain
) -> None:
    """Estimate, "Create Transaction" with its rate_id, the deposit from a funded account, then
    "Get Transaction Info" until success: what it reports paid is the TestUSDT transfer on chain."""
    payout_address = Account.create().address
    created = letsexchange_adapter.create(quoted_request(letsexchange_adapter, payout_address=payout_address))
    assert created.from_amount == Decimal("0.01")
    assert created.to_amount == Decimal("28.88")
    assert created.payout_address == payout_address
    assert created.pair == ETH_TO_USDT
    assert created.valid_until is None  # the create answer states no expiry
    assert letsexchange_adapter.status(ExchangeRef(created.id)).status == ExchangeStatus.AWAITING_DEPOSIT
    assert sandbox_exchanges(letsexchange)[created.id]["sandboxEmail"] == "payouts-ops@example.com"

    payin_hash = send_eth(local_chain, created.payin_address, created.from_amount)
    final = wait_for(letsexchange_adapter, created.id, ExchangeStatus.FINISHED, ExchangeStatus.FAILED)

    assert final.status == ExchangeStatus.FINISHED, final
    assert final.provider_status == "success"
    assert final.amount_from == Decimal("0.01")
    assert final.amount_to == Decimal("28.88")
    assert final.payin_hash == payin_hash
    w3 = connect(local_chain.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(local_chain.usdt_address), abi=ERC20_ABI)
    receipt = w3.eth.get_transaction_receipt(final.payout_hash)
    [transfer] = [dict(event["args"]) for event in token.events.Transfer().process_receipt(receipt)]
    assert transfer == {"from": local_chain.second_treasury_address, "to": payout_address, "value": 28_880_000}


# --- refusals ------------------------------------------------------------------------------------


def test_a_fixed_rate_exchange_needs_a_live_rate_id(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange
) -> None:
    with pytest.raises(ExchangeRefused) as without:
        letsexchange_adapter.create(request(rate_id=None))  # refused before any call
    inject(letsexchange, {"next_quote_ttl_seconds": 0})
    with pytest.raises(ExchangeRefused) as expired:
        letsexchange_adapter.create(quoted_request(letsexchange_adapter))
    assert without.value.kind == expired.value.kind == RefusalKind.RATE_EXPIRED
    assert expired.value.http_status == 422


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"payout_address": "0xinvalid"}, RefusalKind.INVALID_ADDRESS),
        ({"refund_address": "not-an-address"}, RefusalKind.INVALID_ADDRESS),
        ({"from_amount": Decimal("0.001")}, RefusalKind.OUT_OF_RANGE),
    ],
)
def test_create_refusals_are_read_from_the_message(
    letsexchange_adapter: LetsExchangeExchange, overrides: dict[str, object], kind: RefusalKind
) -> None:
    rate_id = letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01")).rate_id
    with pytest.raises(ExchangeRefused) as refused:
        letsexchange_adapter.create(request(rate_id=rate_id, **overrides))
    assert refused.value.kind == kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("This pair is not available.", RefusalKind.PAIR_UNAVAILABLE),
        ("Rate is expired or not found, request a new rate_id.", RefusalKind.RATE_EXPIRED),
        ("The deposit amount is less than the minimum amount 0.002.", RefusalKind.OUT_OF_RANGE),
        ("Something else went wrong.", RefusalKind.OTHER),
    ],
)
def test_a_refusal_fault_maps_to_its_kind_and_is_not_retried(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange, message: str, kind: RefusalKind
) -> None:
    inject(letsexchange, {"refuse": {"count": 2, "path": "/api/v1/info", "error": message}})
    with pytest.raises(ExchangeRefused) as refused:
        letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert refused.value.kind == kind
    assert message in str(refused.value)
    assert letsexchange.faults.snapshot()["refuse"]["remaining"] == 1  # one call, no retry


def test_an_unknown_transaction_is_not_found(letsexchange_adapter: LetsExchangeExchange) -> None:
    for exchange_id in ("0123456789abc", "../info"):
        with pytest.raises(ExchangeRefused) as refused:
            letsexchange_adapter.status(ExchangeRef(exchange_id))
        assert refused.value.kind == RefusalKind.NOT_FOUND


# --- outcomes after the deposit --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "word"),
    [
        ("verifying", ExchangeStatus.VERIFYING, "aml_check_failed"),
        ("refunded", ExchangeStatus.REFUNDED, "refund"),
        ("failed", ExchangeStatus.FAILED, "error"),
    ],
)
def test_a_held_refunded_or_failed_exchange_is_normalised(
    letsexchange_adapter: LetsExchangeExchange,
    letsexchange: SandboxLetsExchange,
    local_chain: LocalChain,
    outcome: str,
    status: ExchangeStatus,
    word: str,
) -> None:
    inject(letsexchange, {"next_outcome": outcome})
    created = letsexchange_adapter.create(quoted_request(letsexchange_adapter))
    send_eth(local_chain, created.payin_address, created.from_amount)
    state = wait_for(letsexchange_adapter, created.id, status)
    assert (state.status, state.provider_status) == (status, word)
    assert state.amount_to is None  # nothing was paid out
    if status == ExchangeStatus.REFUNDED:
        refund = connect(local_chain.rpc_url).eth.get_transaction(state.refund_hash)
        assert refund["to"] == Account.from_key(PAYER_KEY).address
        assert refund["value"] == to_base_units(Decimal("0.01"), 18)


# --- waits: rate limits, outages, slowness, the key -------------------------------------------------


def test_a_429_with_a_long_retry_after_is_handed_to_the_task(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange
) -> None:
    inject(letsexchange, {"http_429": {"count": 3, "retry_after": 30}})
    with pytest.raises(ExchangeUnavailable) as limited:
        letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert limited.value.retry_after == 30
    assert limited.value.http_status == 429
    assert isinstance(limited.value, TransientError)
    assert letsexchange.faults.snapshot()["http_429"]["remaining"] == 2  # not slept on inside the worker


def test_a_short_429_is_retried_inline(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange
) -> None:
    inject(letsexchange, {"http_429": {"count": 1, "retry_after": 0}, "http_500": {"count": 1}})
    assert letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01")).to_amount == Decimal("28.88")


def test_the_create_post_is_never_retried(
    letsexchange_adapter: LetsExchangeExchange, letsexchange: SandboxLetsExchange
) -> None:
    exchange_request = quoted_request(letsexchange_adapter)
    before = len(sandbox_exchanges(letsexchange))
    inject(letsexchange, {"http_500": {"count": 2, "path": "/api/v1/transaction"}})
    with pytest.raises(ExchangeUnavailable):
        letsexchange_adapter.create(exchange_request)
    assert letsexchange.faults.snapshot()["http_500"]["remaining"] == 1
    assert len(sandbox_exchanges(letsexchange)) == before


def test_a_slow_answer_is_a_timeout_and_a_wait(letsexchange: SandboxLetsExchange, api_key: None) -> None:
    reset_sandbox(letsexchange)
    adapter = adapter_for(letsexchange.api_url, read_timeout=0.3, max_attempts=2)
    inject(letsexchange, {"slow": {"count": 2, "seconds": "1"}})
    started = time.monotonic()
    with pytest.raises(ExchangeUnavailable) as slow:
        adapter.amount_range(ETH_TO_USDT)
    assert "Timeout" in str(slow.value)
    assert time.monotonic() - started < 1.5  # two timed-out attempts, not two full answers
    reset_sandbox(letsexchange)


def test_an_unreachable_provider_is_a_wait(api_key: None) -> None:
    with pytest.raises(ExchangeUnavailable):
        adapter_for("http://127.0.0.1:9/api", max_attempts=1).estimate(ETH_TO_USDT, Decimal("0.01"))


def test_a_refused_key_is_an_alerted_wait_and_the_key_is_read_at_each_call(
    db: None,  # an alert is counted in the database
    letsexchange_adapter: LetsExchangeExchange,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LetsExchange answers a wrong Bearer key 403: a wait with an alert naming the call, never
    the key; once the mounted file holds the right key, the same adapter goes through."""
    key_file = tmp_path / "letsexchange_api_key"
    key_file.write_text("rotated-away-key\n")
    monkeypatch.delenv(KEY_VARIABLE)  # the mounted file is read instead, at every call
    monkeypatch.setenv(f"{KEY_VARIABLE}_FILE", str(key_file))
    settings.PGP_ALERT_REPEAT_SECONDS = 0
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"), pytest.raises(ExchangeUnauthorized) as refused:
        letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert isinstance(refused.value, ExchangeUnavailable)
    assert not isinstance(refused.value, ExchangeRefused)
    assert refused.value.http_status == 403
    (line,) = [record.getMessage() for record in caplog.records if "ALERT exchange_unauthorized" in record.getMessage()]
    assert "provider=letsexchange call=POST /v1/info http=403" in line
    assert "rotated-away-key" not in line
    assert LETSEXCHANGE_TEST_API_KEY not in line

    key_file.write_text(LETSEXCHANGE_TEST_API_KEY + "\n")
    assert letsexchange_adapter.estimate(ETH_TO_USDT, Decimal("0.01")).rate_id


# --- address checks -------------------------------------------------------------------------------


def test_evm_addresses_are_checked_here_and_others_are_left_to_another_provider() -> None:
    adapter = adapter_for("http://127.0.0.1:9")  # nothing is asked over HTTP
    good = Account.create().address
    assert adapter.validate_address(USDT_ERC20, good).valid
    mangled = good[:-1] + ("a" if good[-1] != "a" else "b")
    assert not adapter.validate_address(USDT_ERC20, mangled.swapcase()[0:2] + mangled[2:].swapcase()).valid
    # Nothing to ask for a bitcoin address: neither a yes nor a no, and no failure of the provider.
    cannot = adapter.validate_address(ASSETS[("btc", "btc")], "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq")
    assert (cannot.valid, cannot.checked) == (False, False)


# --- bodies the reference does not allow ----------------------------------------------------------


class CannedServer:
    """Answers every request with the next canned (status, body) and keeps what it was sent."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, str]] = []
        self.received: list[bytes] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                canned.received.append(self.rfile.read(length))
                status, body = canned.answers.pop(0)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canned(api_key: None) -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


INFO = {
    "min_amount": "0.002",
    "max_amount": "10",
    "amount": "28.5",
    "rate_id": "r1",
    "rate_id_expired_at": "1719396641906",
}
FINISHED = {
    "transaction_id": "5bb44a4d99cd5",
    "status": "success",
    "deposit_amount": "0.01",
    "withdrawal_amount": "28.88",
    "real_deposit_amount": "0.01",
    "real_withdrawal_amount": "",
    "hash_in": "0xin",
    "hash_out": "0xout",
}


def test_amounts_are_sent_as_exact_numbers_and_read_as_decimals(canned: CannedServer) -> None:
    canned.answers.append((200, json.dumps(INFO)))
    quote = adapter_for(canned.url).estimate(ETH_TO_USDT, Decimal("0.0123456789012345678"))
    assert quote.to_amount == Decimal("28.5")
    assert quote.valid_until == datetime(2024, 6, 26, 10, 10, 41, 906000, tzinfo=UTC)
    sent = json.loads(canned.received[0], parse_float=Decimal)
    assert sent["amount"] == Decimal("0.0123456789012345678")  # a JSON number, no float on the way
    assert (sent["from"], sent["network_from"], sent["to"], sent["network_to"]) == ("ETH", "ETH", "USDT", "ERC20")
    assert sent["float"] is False


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>maintenance</html>"),
        (200, json.dumps([INFO])),
        (200, json.dumps({**INFO, "amount": "abc"})),
        (200, json.dumps({**INFO, "amount": True})),
        (200, json.dumps({key: value for key, value in INFO.items() if key != "amount"})),
        (200, json.dumps({**INFO, "rate_id": None})),
        (200, json.dumps({**INFO, "rate_id_expired_at": "soon"})),
        (200, json.dumps({**INFO, "min_amount": "-1"})),
    ],
)
def test_a_quote_body_the_reference_does_not_allow_is_a_bad_response(
    canned: CannedServer, status: int, body: str
) -> None:
    canned.answers.append((status, body))
    with pytest.raises(ExchangeBadResponse):
        adapter_for(canned.url).estimate(ETH_TO_USDT, Decimal("0.01"))


def test_a_finished_transaction_without_its_real_amount_is_read_carefully(canned: CannedServer) -> None:
    """ "Get Transaction Info": real_withdrawal_amount is what was paid for what arrived. Without
    it, the expected withdrawal_amount stands only for the expected deposit."""
    adapter = adapter_for(canned.url)
    canned.answers.append((200, json.dumps(FINISHED)))
    assert adapter.status(ExchangeRef("5bb44a4d99cd5")).amount_to == Decimal("28.88")
    canned.answers.append((200, json.dumps({**FINISHED, "real_deposit_amount": "0.009"})))
    with pytest.raises(ExchangeBadResponse):
        adapter.status(ExchangeRef("5bb44a4d99cd5"))
    canned.answers.append((200, json.dumps({**FINISHED, "status": "brand_new_word"})))
    state = adapter.status(ExchangeRef("5bb44a4d99cd5"))
    assert (state.status, state.amount_to) == (ExchangeStatus.UNKNOWN, None)
    canned.answers.append((200, json.dumps({**FINISHED, "status": "overdue"})))
    assert adapter.status(ExchangeRef("5bb44a4d99cd5")).status == ExchangeStatus.FAILED


def test_a_created_transaction_that_wants_a_deposit_memo_is_refused(canned: CannedServer) -> None:
    created = {
        "transaction_id": "5bb44a4d99cd5",
        "status": "wait",
        "deposit": "0x" + "11" * 20,
        "deposit_extra_id": "12345",
        "deposit_amount": "0.01",
        "withdrawal_amount": "28.88",
    }
    canned.answers.append((200, json.dumps(created)))
    with pytest.raises(ExchangeRefused) as refused:
        adapter_for(canned.url).create(request(rate_id="r1"))
    assert refused.value.kind == RefusalKind.PAIR_UNAVAILABLE
    canned.answers.append((200, json.dumps({**created, "deposit_extra_id": None, "deposit": ""})))
    with pytest.raises(ExchangeBadResponse):
        adapter_for(canned.url).create(request(rate_id="r1"))
