"""Routing across exchange providers, over real loopback HTTP: the ChangeNOW sandbox (0.5 %) and the
LetsExchange sandbox (repriced per test) quote each pair, and the better net amount wins; a
refusal, an outage or an open circuit breaker passes the pair to the other, and when no provider
can answer the pair waits with an alert."""

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from integrations.assets import ETH, USDT_ERC20
from integrations.exchange import routing
from integrations.exchange.port import ExchangePair, ExchangeRefused, ExchangeUnavailable
from pgp_project.operations.circuit_breaker import BreakerState, breaker_state
from pgp_project.operations.models import OutsideServiceHealth
from standins.sandbox_changenow import SandboxChangeNow
from standins.sandbox_letsexchange import SandboxLetsExchange

from ..conftest import CHANGENOW_TEST_API_KEY, LETSEXCHANGE_TEST_API_KEY
from ..flows import inject, reset_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ETH_TO_USDT = ExchangePair(ETH, USDT_ERC20)
NOTHING_LISTENS = "http://127.0.0.1:9"
QUOTE_PATH = "/api/v1/info"  # LetsExchange's fixed-rate quote ("Get Info")


def two_providers(settings, changenow_url: str, letsexchange_url: str) -> None:
    settings.PGP_EXCHANGES = {
        **settings.PGP_EXCHANGES,
        "changenow": {**settings.PGP_EXCHANGES["changenow"], "url": changenow_url, "enabled": True},
        "letsexchange": {**settings.PGP_EXCHANGES["letsexchange"], "url": letsexchange_url, "enabled": True},
    }


@pytest.fixture
def providers(settings, monkeypatch, sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange) -> Iterator[None]:
    """Both enabled; LetsExchange at 0.2 % and no withdrawal fee quotes more than ChangeNOW."""
    monkeypatch.setenv("CHANGENOW_API_KEY", CHANGENOW_TEST_API_KEY)
    monkeypatch.setenv("LETSEXCHANGE_API_KEY", LETSEXCHANGE_TEST_API_KEY)
    settings.PGP_EXCHANGE_BREAKER_FAILURES = 2
    settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = 60
    two_providers(settings, sandbox.base_url, letsexchange.api_url)
    for server in (sandbox, letsexchange):
        reset_sandbox(server)
    letsexchange.set_prices(fee_percent=Decimal("0.2"), withdrawal_fee_usd=Decimal(0))
    yield
    for server in (sandbox, letsexchange):
        reset_sandbox(server)


def test_the_better_net_amount_wins_and_every_quote_is_kept(providers: None, letsexchange: SandboxLetsExchange) -> None:
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [quote.provider for quote in route.quotes] == ["letsexchange", "changenow"]
    # 30 USDT less 0.2 % against less 0.5 %.
    assert [quote.to_amount for quote in route.quotes] == [Decimal("29.94"), Decimal("29.85")]
    assert all(quote.quote and quote.quote.rate_id for quote in route.quotes)
    assert route.saving() == (Decimal("0.09"), "changenow")

    # Repriced above ChangeNOW (1 % and a 1 USD withdrawal fee), it loses the next batch.
    letsexchange.set_prices(fee_percent=Decimal("1"), withdrawal_fee_usd=Decimal("1"))
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [quote.provider for quote in route.quotes] == ["changenow", "letsexchange"]


def test_a_refusal_from_the_better_provider_falls_back_to_the_other(
    providers: None, letsexchange: SandboxLetsExchange
) -> None:
    inject(letsexchange, {"refuse": {"count": 1, "path": QUOTE_PATH, "error": "Pair is not available"}})
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [quote.provider for quote in route.quoted] == ["changenow"]
    (refused,) = [quote for quote in route.quotes if quote.quote is None]
    assert refused.provider == "letsexchange"
    assert refused.refused
    assert "not available" in refused.problem


def test_the_range_is_the_best_of_the_candidates_and_an_amount_over_one_maximum_goes_to_the_other(
    providers: None, sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange
) -> None:
    letsexchange.set_prices(fee_percent=Decimal("1"))  # ChangeNOW quotes better ...
    inject(sandbox, {"max_amount_usd": "30"})  # ... up to its maximum of 0.01 ETH
    changenow = routing.exchange_provider("changenow").amount_range(ETH_TO_USDT)
    other = routing.exchange_provider("letsexchange").amount_range(ETH_TO_USDT)
    assert changenow.maximum == Decimal("0.01")
    assert other.maximum is not None
    assert other.maximum > changenow.maximum
    best = routing.amount_range(ETH_TO_USDT)
    assert (best.minimum, best.maximum) == (min(changenow.minimum, other.minimum), other.maximum)

    route = routing.quote_route(ETH_TO_USDT, Decimal("0.02"))  # over ChangeNOW's maximum
    assert [quote.provider for quote in route.quoted] == ["letsexchange"]
    (refused,) = [quote for quote in route.quotes if quote.quote is None]
    assert (refused.provider, refused.refused) == ("changenow", True)


def test_a_provider_that_is_down_opens_its_breaker_and_is_skipped_until_a_probe_answers(
    providers: None, settings, sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange, caplog, admin_client
) -> None:
    two_providers(settings, sandbox.base_url, NOTHING_LISTENS)
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        for _ in range(2):  # PGP_EXCHANGE_BREAKER_FAILURES
            route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
            assert [quote.provider for quote in route.quoted] == ["changenow"]
    assert breaker_state("letsexchange", cooldown=60) == BreakerState.OPEN
    page = admin_client.get(reverse("admin:operations_outsideservicehealth_changelist")).content.decode()
    assert "open since" in page  # the operator sees it too
    assert any("ALERT exchange_provider_circuit_open" in r.getMessage() for r in caplog.records)
    calls_before = OutsideServiceHealth.objects.get(name="letsexchange").calls_unavailable

    # Open: not even asked, so an outage costs the batch no timeout.
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [(quote.provider, quote.problem) for quote in route.quotes if quote.quote is None] == [
        ("letsexchange", routing.CIRCUIT_OPEN)
    ]
    assert OutsideServiceHealth.objects.get(name="letsexchange").calls_unavailable == calls_before

    # It is back, and the cool-down is over: one probe goes through, answers, and closes it.
    two_providers(settings, sandbox.base_url, letsexchange.api_url)
    settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = 0
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert route.quoted[0].provider == "letsexchange"
    assert breaker_state("letsexchange", cooldown=0) == BreakerState.CLOSED


def test_when_every_provider_is_down_the_pair_waits_with_an_alert(providers: None, settings, caplog) -> None:
    two_providers(settings, NOTHING_LISTENS, NOTHING_LISTENS)
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"), pytest.raises(ExchangeUnavailable):
        routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    (line,) = [r.getMessage() for r in caplog.records if "ALERT exchange_no_provider_available" in r.getMessage()]
    assert "pair=eth-eth->usdt-eth" in line


def test_when_every_provider_refuses_the_refusal_is_decided_by_its_kind(
    providers: None, sandbox: SandboxChangeNow, letsexchange: SandboxLetsExchange
) -> None:
    with pytest.raises(ExchangeRefused) as refused:
        routing.quote_route(ETH_TO_USDT, Decimal("0.0001"))  # 0.30 USD: under both minimums
    assert refused.value.kind == "out_of_range"
    assert set(refused.value.provider.split(", ")) == {"changenow", "letsexchange"}


def test_metrics_count_each_providers_calls_by_outcome(
    providers: None, settings, letsexchange: SandboxLetsExchange
) -> None:
    inject(letsexchange, {"refuse": {"count": 1, "path": QUOTE_PATH, "error": "Pair is not available"}})
    routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    settings.PGP_METRICS_TOKEN = "metrics-token"
    body = HttpClient().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token").content.decode()
    assert 'pgp_exchange_provider_calls_total{outcome="ok",provider="changenow"} 2.0' in body
    assert 'pgp_exchange_provider_calls_total{outcome="refused",provider="letsexchange"} 1.0' in body
    assert 'pgp_exchange_provider_calls_total{outcome="ok",provider="letsexchange"} 1.0' in body
    assert 'pgp_exchange_provider_call_seconds_count{provider="letsexchange"} 2.0' in body
    assert 'pgp_exchange_provider_circuit_open{provider="letsexchange"} 0.0' in body


def test_an_address_checked_locally_neither_claims_the_probe_nor_closes_the_breaker(
    providers: None, settings, sandbox: SandboxChangeNow
) -> None:
    """LetsExchange has no address call: its check is our own rule, made without asking it. So
    that check says nothing about whether it is up: while it is down its breaker must stay open
    (and its one probe unclaimed), and no call to it is counted."""
    two_providers(settings, NOTHING_LISTENS, NOTHING_LISTENS)
    settings.PGP_EXCHANGES = {
        **settings.PGP_EXCHANGES,
        "changenow": {**settings.PGP_EXCHANGES["changenow"], "enabled": False},
    }
    for _ in range(2):  # PGP_EXCHANGE_BREAKER_FAILURES: LetsExchange is down
        with pytest.raises(ExchangeUnavailable):
            routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert breaker_state("letsexchange", cooldown=60) == BreakerState.OPEN
    calls_ok = OutsideServiceHealth.objects.get(name="letsexchange").calls_ok

    settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = 0  # cooled down: the next real call is the probe
    check, checked_by = routing.validate_address(ETH_TO_USDT, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert (check.valid, check.checked, checked_by) == (True, True, "letsexchange")

    health = OutsideServiceHealth.objects.get(name="letsexchange")
    assert health.opened_at is not None, "a check made without the provider closed its breaker"
    assert health.probe_claimed_at is None, "the probe was claimed by a call that never reached the provider"
    assert health.calls_ok == calls_ok
    # LetsExchange is still down: the probe is for a real call, which finds it so.
    with pytest.raises(ExchangeUnavailable):
        routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert OutsideServiceHealth.objects.get(name="letsexchange").opened_at is not None


def test_an_api_key_that_cannot_be_sent_never_reaches_a_quote_row_the_health_row_or_an_alert(
    providers: None, settings, monkeypatch, caplog
) -> None:
    """A key file holding two lines (the old key and the new, mid-rotation) makes a header that
    requests refuses, quoting it in its message. That message must not be kept as the quote's
    problem, the provider's last failure or the circuit-open alert's `last` (rule 8)."""
    monkeypatch.setenv("LETSEXCHANGE_API_KEY", "lx-old-secret-key-0001\nlx-new-secret-key-0002")
    with caplog.at_level(logging.INFO):
        for _ in range(2):  # PGP_EXCHANGE_BREAKER_FAILURES: the breaker opens, alerted
            route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
            (failed,) = [quote for quote in route.quotes if quote.quote is None]
            assert failed.provider == "letsexchange"
            assert "secret-key" not in failed.problem
    health = OutsideServiceHealth.objects.get(name="letsexchange")
    assert health.calls_bad_response == 2
    assert "secret-key" not in health.last_failure
    assert any("ALERT exchange_provider_circuit_open" in record.getMessage() for record in caplog.records)
    assert not [record.getMessage() for record in caplog.records if "secret-key" in record.getMessage()]


def test_a_better_rate_that_expires_before_it_could_be_funded_ranks_after_one_that_lasts(
    providers: None, letsexchange: SandboxLetsExchange
) -> None:
    inject(letsexchange, {"next_quote_ttl_seconds": 5})  # LetsExchange quotes more, for 5 s only
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"), lasting_at_least=120)
    assert [quote.provider for quote in route.quoted] == ["changenow", "letsexchange"]
    better, lasting = route.quoted[1].to_amount, route.quoted[0].to_amount
    assert better is not None
    assert lasting is not None
    assert better > lasting
