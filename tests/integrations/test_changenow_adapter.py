"""The ChangeNOW adapter against the sandbox, over real loopback HTTP: what ChangeNOW documents
for each call, as the adapter must read it. The reference is ChangeNOW's API v2,
https://documenter.getpostman.com/view/8180765/SVfTPnM8; each test names its section.

No database: the adapter talks HTTP only (an alert is a log line).
"""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from eth_account import Account

from integrations.assets import ETH, USDT_ERC20
from integrations.exchange.changenow import ChangeNowExchange
from integrations.exchange.port import (
    AmountRange,
    ExchangePair,
    ExchangeRef,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeUnauthorized,
    ExchangeUnavailable,
    RefusalKind,
)
from pgp_project.operations.transient import TransientError
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import CHANGENOW_TEST_API_KEY
from ..flows import inject, reset_sandbox, sandbox_exchanges

pytestmark = pytest.mark.slow

ETH_TO_USDT = ExchangePair(ETH, USDT_ERC20)


@pytest.fixture
def changenow(sandbox: SandboxChangeNow, monkeypatch) -> Iterator[ChangeNowExchange]:
    monkeypatch.setenv("CHANGENOW_API_KEY", CHANGENOW_TEST_API_KEY)
    monkeypatch.delenv("CHANGENOW_API_KEY_FILE", raising=False)
    reset_sandbox(sandbox)
    yield ChangeNowExchange(base_url=sandbox.base_url, backoff_base=0.01)
    reset_sandbox(sandbox)  # no fault leaks into the next test


def request(**overrides: object) -> ExchangeRequest:
    fields: dict[str, object] = {
        "pair": ETH_TO_USDT,
        "from_amount": Decimal("0.01"),
        "payout_address": Account.create().address,
        "refund_address": Account.create().address,
        "rate_id": None,
        "reference": "conversion-1",
    }
    fields.update(overrides)
    return ExchangeRequest(**fields)


# --- 4. rate expiry -----------------------------------------------------------------------------


def test_the_estimate_keeps_when_its_fixed_rate_expires(changenow: ChangeNowExchange) -> None:
    """ "Estimated exchange amount" (GET /v2/exchange/estimated-amount, flow=fixed-rate,
    useRateId=true) answers validUntil with the rateId; "Create exchange transaction" and
    "Exchange status" do not, so the estimate is where the expiry must come from."""
    before = datetime.now(UTC)
    quote = changenow.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert quote.rate_id
    assert quote.to_amount == Decimal("29.85")  # 0.01 ETH at 3000 USD, less the sandbox's 0.5 %
    assert quote.valid_until is not None
    # The sandbox's fixed rates hold 300 s (its rate_id_ttl_seconds).
    assert before + timedelta(seconds=299) <= quote.valid_until <= datetime.now(UTC) + timedelta(seconds=300)

    created = changenow.create(request(rate_id=quote.rate_id))
    assert created.valid_until is None
    assert changenow.status(ExchangeRef(created.id)).valid_until is None


def test_a_quote_of_a_rate_that_expires_soon_says_so(changenow: ChangeNowExchange, sandbox: SandboxChangeNow) -> None:
    """ "Estimated exchange amount": validUntil is the rate's own expiry, whatever it is."""
    inject(sandbox, {"next_quote_ttl_seconds": 5})
    quote = changenow.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert quote.valid_until is not None
    assert quote.valid_until - datetime.now(UTC) <= timedelta(seconds=5)


# --- 5. range and refusals ----------------------------------------------------------------------


def test_the_range_is_asked_from_exchange_range(changenow: ChangeNowExchange, sandbox: SandboxChangeNow) -> None:
    """ "Exchange range" (GET /v2/exchange/range with fromCurrency, toCurrency, fromNetwork,
    toNetwork, flow): minAmount and maxAmount. The minimum comes from the same answer."""
    assert changenow.amount_range(ETH_TO_USDT) == AmountRange(Decimal("0.00166667"), Decimal("33333.33333333"))
    assert changenow.minimum(ETH_TO_USDT) == Decimal("0.00166667")
    inject(sandbox, {"max_amount_usd": "30"})
    assert changenow.amount_range(ETH_TO_USDT) == AmountRange(Decimal("0.00166667"), Decimal("0.01"))
    with pytest.raises(ExchangeRefused) as refused:
        changenow.estimate(ETH_TO_USDT, Decimal("0.0100001"))
    assert (refused.value.kind, refused.value.code) == (RefusalKind.OUT_OF_RANGE, "out_of_range")


@pytest.mark.parametrize("code", ["out_of_range", "deposit_too_small"])
def test_deposit_too_small_is_decided_like_out_of_range(
    changenow: ChangeNowExchange, sandbox: SandboxChangeNow, code: str
) -> None:
    """ "Errors": both codes refuse an amount outside the pair's range."""
    inject(sandbox, {"refuse": {"count": 1, "path": "/v2/exchange/estimated-amount", "error": code}})
    with pytest.raises(ExchangeRefused) as refused:
        changenow.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert refused.value.kind == RefusalKind.OUT_OF_RANGE
    assert (refused.value.code, refused.value.http_status) == (code, 400)


@pytest.mark.django_db  # the alert line is counted for /metrics
def test_a_refused_api_key_is_an_alerted_wait_not_a_refusal(
    changenow: ChangeNowExchange, settings, caplog: pytest.LogCaptureFixture, tmp_path, monkeypatch
) -> None:
    """A 401 ("Authentication": the x-changenow-api-key header) from a bad or rotated key says
    nothing about the batch: a transient wait, alerted (once per PGP_ALERT_REPEAT_SECONDS), and
    the key never logged. Once the key file holds the right key, the next call goes through
    without a restart."""
    key_file = tmp_path / "changenow_api_key"
    key_file.write_text("rotated-away-key\n")
    monkeypatch.delenv("CHANGENOW_API_KEY")  # the mounted file is read instead, at every call
    monkeypatch.setenv("CHANGENOW_API_KEY_FILE", str(key_file))
    settings.PGP_ALERT_REPEAT_SECONDS = 0  # whatever this process alerted before
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"), pytest.raises(ExchangeUnauthorized) as waited:
        changenow.amount_range(ETH_TO_USDT)
    settings.PGP_ALERT_REPEAT_SECONDS = 3600  # a lasting condition: once, not on every call
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"), pytest.raises(ExchangeUnauthorized):
        changenow.estimate(ETH_TO_USDT, Decimal("0.01"))
    assert isinstance(waited.value, ExchangeUnavailable)
    assert isinstance(waited.value, TransientError)
    assert not isinstance(waited.value, ExchangeRefused)
    assert waited.value.http_status == 401
    (line,) = [record.getMessage() for record in caplog.records if "ALERT exchange_unauthorized" in record.getMessage()]
    assert "call=GET /v2/exchange/range http=401 error=unauthorized" in line
    assert "rotated-away-key" not in line
    assert CHANGENOW_TEST_API_KEY not in line

    key_file.write_text(CHANGENOW_TEST_API_KEY + "\n")
    assert changenow.amount_range(ETH_TO_USDT).minimum == Decimal("0.00166667")


@pytest.mark.parametrize("contact_email", ["payouts-ops@example.com", ""])
def test_the_contact_email_is_sent_from_the_setting(
    changenow: ChangeNowExchange, sandbox: SandboxChangeNow, contact_email: str
) -> None:
    """ "Create exchange transaction": contactEmail, where ChangeNOW's support writes about the
    exchange (empty: none given), from the provider's PGP_EXCHANGES entry."""
    changenow = ChangeNowExchange("changenow", {"contact_email": contact_email}, base_url=sandbox.base_url)
    quote = changenow.estimate(ETH_TO_USDT, Decimal("0.01"))
    created = changenow.create(request(rate_id=quote.rate_id))
    assert sandbox_exchanges(sandbox)[created.id]["sandboxContactEmail"] == (contact_email or None)
