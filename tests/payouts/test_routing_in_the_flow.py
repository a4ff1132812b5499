"""Best-quote routing through the whole flow: signed IPNs, a real worker, the ChangeNOW and
LetsExchange sandboxes over loopback HTTP on one anvil. A refusal from the better provider falls
back to the other; one provider down for the whole run delays nothing; a re-quote may move a
batch to the other provider without a second send; reconciliation asks each exchange of its own
provider."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.utils import timezone
from eth_account import Account
from web3 import Web3

from batching.conversion import check_threshold
from console.reconciliation import reconcile
from payments.models import Client
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import ExchangeQuote, HostPayment
from pgp_project.money import to_base_units
from standins.localchain import ANVIL_DEV_PRIVATE_KEYS, LocalChain
from standins.models import FixedPriceExchangeRecord
from standins.sandbox_changenow import SandboxChangeNow
from standins.sandbox_letsexchange import SandboxLetsExchange

from ..conftest import LETSEXCHANGE_TEST_API_KEY
from ..flows import (
    alert_lines,
    inject,
    post_eth_payment,
    reset_sandbox,
    route_exchanges_to,
    sandbox_exchanges,
    wait_final_conversion,
)
from .test_client_payouts import credit_usdt, make_client, wait_final

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NOTHING_LISTENS = "http://127.0.0.1:9"
QUOTE_PATH = "/api/v1/info"  # LetsExchange's fixed-rate quote ("Get Info")
CREATE_PATH = "/api/v1/transaction"


@pytest.fixture(autouse=True)
def clean_sandboxes(sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange, monkeypatch) -> Iterator[None]:
    """Both reset; LetsExchange at 0.1 % and no withdrawal fee quotes more than ChangeNOW."""
    monkeypatch.setenv("LETSEXCHANGE_API_KEY", LETSEXCHANGE_TEST_API_KEY)  # this process's calls
    for server in (sandbox, letsexchange):
        reset_sandbox(server)
    letsexchange.set_prices(fee_percent=Decimal("0.1"), withdrawal_fee_usd=Decimal(0))
    yield
    for server in (sandbox, letsexchange):
        reset_sandbox(server)


def both_providers(settings: Any, sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange, **env: str) -> dict:
    """Both enabled, in this process and in the worker the test starts (`env` may override)."""
    changenow_url = env.get("CHANGENOW_API_URL", sandbox.base_url)
    route_exchanges_to(
        settings, "changenow", "letsexchange", urls={"changenow": changenow_url, "letsexchange": letsexchange.api_url}
    )
    return {
        "LETSEXCHANGE_ENABLED": "true",
        "LETSEXCHANGE_API_URL": letsexchange.api_url,
        "LETSEXCHANGE_API_KEY": LETSEXCHANGE_TEST_API_KEY,
        **env,
    }


def three_payments(client: Client, first_id: int) -> None:
    for offset in range(3):  # 0.012 ETH, 29.10 USD net: over the 20 USD threshold
        post_eth_payment(first_id + offset, client_id=client.external_id, eth="0.004")


def quotes_of(kind: str, batch_id: int) -> list[tuple[int, str, bool, str]]:
    return [
        (quote.round, quote.provider, quote.chosen, quote.problem)
        for quote in ExchangeQuote.objects.filter(batch_kind=kind, batch_id=batch_id).order_by("round", "provider")
    ]


def hot_wallet_sends(local_chain: LocalChain) -> int:
    return Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_transaction_count(local_chain.hot_wallet_address)


def test_a_refusal_from_the_better_provider_when_creating_falls_back_to_the_other(
    start_worker, settings, threshold_client: Client, sandbox, letsexchange, local_chain: LocalChain
) -> None:
    start_worker(**both_providers(settings, sandbox, letsexchange))
    inject(letsexchange, {"refuse": {"count": 1, "path": CREATE_PATH, "error": "Pair is not available"}})
    sends_before = hot_wallet_sends(local_chain)
    letsexchange_before = set(sandbox_exchanges(letsexchange))
    three_payments(threshold_client, 810000)
    conversion = wait_final_conversion(check_threshold().conversion_id)

    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.exchange_provider == "changenow"
    (changenow, letsexchange_quote) = quotes_of("conversion", conversion.pk)
    assert changenow[:3] == (1, "changenow", True)
    assert letsexchange_quote[:3] == (1, "letsexchange", False)
    assert "creating the exchange failed" in letsexchange_quote[3]
    assert conversion.exchange_id in sandbox_exchanges(sandbox)
    assert set(sandbox_exchanges(letsexchange)) == letsexchange_before  # refused: nothing created there
    assert hot_wallet_sends(local_chain) == sends_before + 1


def test_with_one_provider_down_for_the_whole_run_every_payout_completes_through_the_other(
    start_worker, settings, threshold_client: Client, sandbox, letsexchange, local_chain: LocalChain
) -> None:
    """ChangeNOW cannot be reached at all: its breaker opens (alerted) and routing stops asking
    it; the conversion and a client's ETH payout both complete through LetsExchange."""
    settings.PGP_EXCHANGE_BREAKER_FAILURES = 2
    worker = start_worker(
        **both_providers(
            settings, sandbox, letsexchange, CHANGENOW_API_URL=NOTHING_LISTENS, PGP_EXCHANGE_BREAKER_FAILURES="2"
        )
    )
    three_payments(threshold_client, 820000)
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.exchange_provider == "letsexchange"

    wallet = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[6]).address
    client = make_client("-2020202", "5.00", wallet_address=wallet)  # paid in ETH: an exchange
    credit_usdt(client, ["6.00", "6.00"], first_id=820100)
    payouts = []
    for _ in range(2):
        (batch_id,) = check_client_payouts()
        payouts.append(wait_final(batch_id))
        credit_usdt(client, ["7.00"], first_id=820200 + len(payouts))
    for payout in payouts:
        assert payout.status == BatchStatus.COMPLETED, (payout.review_reason, payout.last_error)
        assert payout.exchange_provider == "letsexchange"
        paid = Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_transaction(payout.payout_tx_hash)
        assert paid["to"] == wallet
        assert paid["value"] == to_base_units(payout.payout_amount, 18)
    assert alert_lines(worker, "exchange_provider_circuit_open")
    assert all(
        changenow_problem
        for (_, provider, _, changenow_problem) in quotes_of("payout", payouts[-1].pk)
        if provider == "changenow"
    )


def test_a_requote_moves_to_the_other_provider_without_a_second_send(
    start_worker, settings, threshold_client: Client, sandbox, letsexchange, local_chain: LocalChain
) -> None:
    """LetsExchange quotes best with a rate that lasts 6 s (the margin here is 3 s), but creating
    its exchange takes 4 s: by the re-check before funding the rate is inside the margin, and from
    then on LetsExchange is down. The batch abandons that exchange unfunded, is routed afresh, and
    is sent once, to ChangeNOW."""
    env = both_providers(settings, sandbox, letsexchange, PGP_RATE_VALIDITY_MARGIN_SECONDS="3")
    sends_before = hot_wallet_sends(local_chain)
    three_payments(threshold_client, 830000)
    conversion_id = check_threshold().conversion_id  # no worker yet: its first step waits queued
    inject(
        letsexchange,
        {
            "next_quote_ttl_seconds": 6,
            "slow": {"count": 1, "path": CREATE_PATH, "seconds": "4"},
            "http_500": {"count": 50, "path": QUOTE_PATH, "after": 1},
        },
    )
    start_worker(**env)
    conversion = wait_final_conversion(conversion_id)

    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.exchange_provider == "changenow"
    (abandoned,) = conversion.abandoned_exchange_ids
    provider, _, abandoned_id = abandoned.partition(":")
    assert provider == "letsexchange"
    assert sandbox_exchanges(letsexchange)[abandoned_id]["status"] == "wait"  # never funded
    assert conversion.exchange_id in sandbox_exchanges(sandbox)
    rounds = quotes_of("conversion", conversion.pk)
    assert [(r, p, chosen) for r, p, chosen, _ in rounds] == [
        (1, "changenow", False),
        (1, "letsexchange", True),
        (2, "changenow", True),
        (2, "letsexchange", False),
    ]
    assert hot_wallet_sends(local_chain) == sends_before + 1  # one send, to the exchange kept
    host_payment = HostPayment.objects.get(pk=conversion.host_payment_id)
    assert host_payment.to_address == conversion.payin_address

    # Reconciliation asks each exchange of the provider it is with, the abandoned one included.
    day = timezone.now()
    run = reconcile(start=day.replace(hour=0, minute=0, second=0, microsecond=0), end=day, triggered_by="test")
    exchange_items = [item for item in run.summary["discrepancies"] if item["check"] == "exchange"]
    assert exchange_items == []
    assert run.summary["exchange"]["by_provider"]["changenow"] >= 1
    assert run.summary["exchange"]["abandoned_checked"] >= 1


def test_an_in_process_provider_quoting_better_wins_a_client_payout(
    start_worker, settings, sandbox: SandboxChangeNow, local_chain: LocalChain
) -> None:
    """The stand-ins' fixed-price exchange (2,000 USD per ETH, the ChangeNOW sandbox 3,000) is one
    adapter and one PGP_EXCHANGES entry: enabled beside ChangeNOW, it quotes more ETH for the
    client's USDT, wins, and pays the client on chain; ChangeNOW is only asked for a quote."""
    route_exchanges_to(settings, "changenow", "fixed_price")
    start_worker(PGP_FIXED_PRICE_EXCHANGE_ENABLED="true")
    wallet = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[5]).address
    changenow_exchanges = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"]
    client = make_client("-101101", "5.00", wallet_address=wallet)
    credit_usdt(client, ["8.00", "4.00"], first_id=840000)
    (batch_id,) = check_client_payouts()
    batch = wait_final(batch_id)
    assert batch.status == BatchStatus.COMPLETED, (batch.review_reason, batch.last_error)
    assert batch.exchange_provider == "fixed_price"
    record = FixedPriceExchangeRecord.objects.get(pk=batch.exchange_id)
    assert record.status == "finished"
    assert batch.payout_amount == (batch.total_usdt / 2000).quantize(Decimal("1e-18"))
    payout = Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_transaction(batch.payout_tx_hash)
    assert (payout["to"], payout["value"]) == (wallet, to_base_units(batch.payout_amount, 18))
    assert [(p, chosen) for _, p, chosen, _ in quotes_of("payout", batch.pk)] == [
        ("changenow", False),
        ("fixed_price", True),
    ]
    assert requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()["count"] == changenow_exchanges
