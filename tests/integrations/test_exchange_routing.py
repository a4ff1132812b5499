"""Routing across exchange providers, over real loopback HTTP: two providers quote each pair (the
ChangeNOW sandbox at its 0.5 % fee, and a second sandbox as a cheaper provider at 0.2 %), and the
better net amount wins; a refusal, an outage or an open circuit breaker passes the pair to the
other, and when no provider can answer the pair waits with an alert."""

import logging
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.test import Client as HttpClient

from integrations.assets import ETH, USDT_ERC20
from integrations.exchange import routing
from integrations.exchange.port import ExchangePair, ExchangeRefused, ExchangeUnavailable
from pgp_project.operations.circuit_breaker import BreakerState, breaker_state
from pgp_project.operations.models import OutsideServiceHealth
from standins.localchain import LocalChain
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig

from ..conftest import CHANGENOW_TEST_API_KEY
from ..flows import inject, reset_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ETH_TO_USDT = ExchangePair(ETH, USDT_ERC20)
NOTHING_LISTENS = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def cheaper_sandbox(local_chain: LocalChain) -> Iterator[SandboxChangeNow]:
    """A second provider with a lower fee and a lower minimum than the ChangeNOW sandbox."""
    server = SandboxChangeNow(
        SandboxConfig(
            rpc_url=local_chain.rpc_url,
            usdt_address=local_chain.usdt_address,
            treasury_private_key=local_chain.treasury_private_key,
            api_key=CHANGENOW_TEST_API_KEY,
            fee_percent=Decimal("0.2"),
            min_amount_usd=Decimal("2"),
            timing=LifecycleTiming(step_delay_seconds=0.2, poll_interval_seconds=0.2),
        )
    )
    server.start()
    yield server
    server.stop()


def two_providers(settings, changenow_url: str, cheaper_url: str) -> None:
    settings.PGP_EXCHANGES = {
        "changenow": {**settings.PGP_EXCHANGES["changenow"], "url": changenow_url, "enabled": True},
        "cheaper": {
            "adapter": "integrations.exchange.changenow.ChangeNowExchange",
            "url": cheaper_url,
            "api_key_env": "CHANGENOW_API_KEY",
            "enabled": True,
        },
    }


@pytest.fixture
def providers(settings, monkeypatch, sandbox: SandboxChangeNow, cheaper_sandbox: SandboxChangeNow) -> Iterator[None]:
    monkeypatch.setenv("CHANGENOW_API_KEY", CHANGENOW_TEST_API_KEY)
    settings.PGP_EXCHANGE_BREAKER_FAILURES = 2
    settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = 60
    two_providers(settings, sandbox.base_url, cheaper_sandbox.base_url)
    for server in (sandbox, cheaper_sandbox):
        reset_sandbox(server)
    yield
    for server in (sandbox, cheaper_sandbox):
        reset_sandbox(server)


def test_the_better_net_amount_wins_and_every_quote_is_kept(providers: None) -> None:
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [quote.provider for quote in route.quotes] == ["cheaper", "changenow"]
    cheaper, changenow = (quote.to_amount for quote in route.quotes)
    assert cheaper is not None
    assert changenow is not None
    assert cheaper > changenow  # 0.2 % against 0.5 % of 30 USDT
    assert all(quote.quote and quote.quote.rate_id for quote in route.quotes)
    saving = route.saving()
    assert saving == (cheaper - changenow, "changenow")
    assert isinstance(saving[0], Decimal)


def test_a_refusal_from_the_better_provider_falls_back_to_the_other(
    providers: None, cheaper_sandbox: SandboxChangeNow
) -> None:
    inject(cheaper_sandbox, {"refuse": {"count": 1, "error": "pair_is_inactive"}})
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [quote.provider for quote in route.quoted] == ["changenow"]
    (refused,) = [quote for quote in route.quotes if quote.quote is None]
    assert refused.provider == "cheaper"
    assert refused.refused
    assert "pair_is_inactive" in refused.problem


def test_the_minimum_is_the_best_of_the_candidates(providers: None) -> None:
    # 5 USD at the ChangeNOW sandbox, 2 USD at the cheaper one, at 3000 USD per ETH.
    changenow = routing.exchange_provider("changenow").amount_range(ETH_TO_USDT)
    cheaper = routing.exchange_provider("cheaper").amount_range(ETH_TO_USDT)
    assert cheaper.minimum < changenow.minimum
    assert routing.amount_range(ETH_TO_USDT).minimum == cheaper.minimum


def test_a_provider_that_is_down_opens_its_breaker_and_is_skipped_until_a_probe_answers(
    providers: None, settings, sandbox: SandboxChangeNow, cheaper_sandbox: SandboxChangeNow, caplog
) -> None:
    two_providers(settings, sandbox.base_url, NOTHING_LISTENS)
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        for _ in range(2):  # PGP_EXCHANGE_BREAKER_FAILURES
            route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
            assert [quote.provider for quote in route.quoted] == ["changenow"]
    assert breaker_state("cheaper", cooldown=60) == BreakerState.OPEN
    assert any("ALERT exchange_provider_circuit_open" in r.getMessage() for r in caplog.records)
    calls_before = OutsideServiceHealth.objects.get(name="cheaper").calls_unavailable

    # Open: not even asked, so an outage costs the batch no timeout.
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert [(quote.provider, quote.problem) for quote in route.quotes if quote.quote is None] == [
        ("cheaper", routing.CIRCUIT_OPEN)
    ]
    assert OutsideServiceHealth.objects.get(name="cheaper").calls_unavailable == calls_before

    # It is back, and the cool-down is over: one probe goes through, answers, and closes it.
    two_providers(settings, sandbox.base_url, cheaper_sandbox.base_url)
    settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = 0
    route = routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert route.quoted[0].provider == "cheaper"
    assert breaker_state("cheaper", cooldown=0) == BreakerState.CLOSED


def test_when_every_provider_is_down_the_pair_waits_with_an_alert(providers: None, settings, caplog) -> None:
    two_providers(settings, NOTHING_LISTENS, NOTHING_LISTENS)
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"), pytest.raises(ExchangeUnavailable):
        routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    (line,) = [r.getMessage() for r in caplog.records if "ALERT exchange_no_provider_available" in r.getMessage()]
    assert "pair=eth-eth->usdt-eth" in line


def test_when_every_provider_refuses_the_refusal_is_decided_by_its_kind(
    providers: None, sandbox: SandboxChangeNow, cheaper_sandbox: SandboxChangeNow
) -> None:
    for server in (sandbox, cheaper_sandbox):
        inject(server, {"refuse": {"count": 1, "error": "out_of_range"}})
    with pytest.raises(ExchangeRefused) as refused:
        routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    assert refused.value.kind == "out_of_range"


def test_metrics_count_each_providers_calls_by_outcome(
    providers: None, settings, sandbox: SandboxChangeNow, cheaper_sandbox: SandboxChangeNow
) -> None:
    inject(cheaper_sandbox, {"refuse": {"count": 1, "error": "pair_is_inactive"}})
    routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    routing.quote_route(ETH_TO_USDT, Decimal("0.01"))
    settings.PGP_METRICS_TOKEN = "metrics-token"
    body = HttpClient().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token").content.decode()
    assert 'pgp_exchange_provider_calls_total{outcome="ok",provider="changenow"} 2.0' in body
    assert 'pgp_exchange_provider_calls_total{outcome="refused",provider="cheaper"} 1.0' in body
    assert 'pgp_exchange_provider_calls_total{outcome="ok",provider="cheaper"} 1.0' in body
    assert 'pgp_exchange_provider_call_seconds_count{provider="cheaper"} 2.0' in body
    assert 'pgp_exchange_provider_circuit_open{provider="cheaper"} 0.0' in body
