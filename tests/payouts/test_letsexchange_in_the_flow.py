"""LetsExchange through the whole flow, beside ChangeNOW: signed IPNs, a real worker, both
sandboxes on one anvil. The conversion goes to whichever quotes more USDT net of its fees, and
what is distributed is what LetsExchange reports paid, which is the transfer on chain."""

from decimal import Decimal
from typing import Any

import pytest
from web3 import Web3

from batching.conversion import check_threshold
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import ExchangeQuote
from standins.erc20 import ERC20_ABI
from standins.localchain import LocalChain, connect
from standins.sandbox_changenow import SandboxChangeNow
from standins.sandbox_letsexchange import SandboxLetsExchange

from ..conftest import LETSEXCHANGE_TEST_API_KEY
from ..flows import post_eth_payment, reset_sandbox, route_exchanges_to, sandbox_exchanges, wait_final_conversion

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def clean_sandboxes(sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange) -> Any:
    reset_sandbox(sandbox)
    reset_sandbox(letsexchange)
    yield
    reset_sandbox(letsexchange)  # its configured prices again


def test_a_conversion_goes_to_letsexchange_when_it_quotes_more_and_distributes_what_it_paid(
    start_worker,
    settings: Any,
    threshold_client: Client,
    sandbox: SandboxChangeNow,
    letsexchange: SandboxLetsExchange,
    local_chain: LocalChain,
) -> None:
    # 0.012 ETH: ChangeNOW's sandbox quotes 35.82 USDT (0.5 %); LetsExchange's, at 0.1 % and no
    # withdrawal fee, 35.964.
    letsexchange.set_prices(fee_percent=Decimal("0.1"), withdrawal_fee_usd=Decimal(0))
    urls = {"changenow": sandbox.base_url, "letsexchange": letsexchange.api_url}
    route_exchanges_to(settings, "changenow", "letsexchange", urls=urls)
    start_worker(
        LETSEXCHANGE_ENABLED="true",
        LETSEXCHANGE_API_URL=letsexchange.api_url,
        LETSEXCHANGE_API_KEY=LETSEXCHANGE_TEST_API_KEY,
    )
    for offset in range(3):
        post_eth_payment(700000 + offset, client_id=threshold_client.external_id, eth="0.004")
    conversion = wait_final_conversion(check_threshold().conversion_id)

    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.exchange_provider == "letsexchange"
    quotes = {
        quote.provider: quote for quote in ExchangeQuote.objects.filter(batch_kind="conversion", batch_id=conversion.pk)
    }
    assert (quotes["letsexchange"].to_amount, quotes["letsexchange"].chosen) == (Decimal("35.964"), True)
    assert (quotes["changenow"].to_amount, quotes["changenow"].chosen) == (Decimal("35.82"), False)
    assert conversion.exchange_id is not None
    exchange = sandbox_exchanges(letsexchange)[conversion.exchange_id]
    assert conversion.received_usdt == Decimal(exchange["real_withdrawal_amount"]) == Decimal("35.964")
    assert conversion.payout_tx_hash == exchange["hash_out"]
    w3 = connect(local_chain.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(local_chain.usdt_address), abi=ERC20_ABI)
    [transfer] = token.events.Transfer().process_receipt(w3.eth.get_transaction_receipt(exchange["hash_out"]))
    assert transfer["args"]["from"] == local_chain.second_treasury_address
    assert transfer["args"]["value"] == 35_964_000
