"""LetsExchange in PGP_EXCHANGES: configured beside ChangeNOW, off until enabled, built by the
registry like any provider, and reached only when enabled (unit tier: nothing is called)."""

from typing import Any

from integrations.assets import ETH, USDT_ERC20
from integrations.exchange import registry
from integrations.exchange.letsexchange import LetsExchangeExchange
from integrations.exchange.metering import MeteredProvider
from integrations.exchange.port import ExchangePair

ETH_TO_USDT = ExchangePair(ETH, USDT_ERC20)


def test_it_is_configured_and_off_by_default(settings: Any) -> None:
    entry = settings.PGP_EXCHANGES["letsexchange"]
    assert entry["adapter"] == "integrations.exchange.letsexchange.LetsExchangeExchange"
    assert entry["url"] == "https://api.letsexchange.io/api"
    assert entry["api_key_env"] == "LETSEXCHANGE_API_KEY"  # the key itself is never a setting
    assert entry["enabled"] is False
    assert "letsexchange" not in registry.enabled_providers()
    assert "letsexchange" not in registry.candidate_providers(ETH_TO_USDT)


def test_the_registry_builds_it_from_its_entry_and_routes_to_it_once_enabled(settings: Any) -> None:
    settings.PGP_EXCHANGES = {
        **settings.PGP_EXCHANGES,
        "letsexchange": {**settings.PGP_EXCHANGES["letsexchange"], "url": "http://127.0.0.1:9/api", "enabled": True},
    }
    built = registry.exchange_provider("letsexchange")
    assert isinstance(built, MeteredProvider)
    assert isinstance(built.adapter, LetsExchangeExchange)
    assert (built.name, built.adapter.base_url) == ("letsexchange", "http://127.0.0.1:9/api")
    assert "letsexchange" in registry.candidate_providers(ETH_TO_USDT)


def test_its_key_is_hidden_from_error_reports_like_every_provider_s(monkeypatch: Any) -> None:
    """The key lives only in the variable its entry names (`api_key_env`), so error reports must
    look it up there, as they do for the chains' keys."""
    from pgp_project.error_reports import configured_secrets

    monkeypatch.setenv("LETSEXCHANGE_API_KEY", "letsexchange-partner-key-123")
    monkeypatch.setenv("CHANGENOW_API_KEY", "changenow-partner-key-456")
    hidden = configured_secrets()
    assert "letsexchange-partner-key-123" in hidden
    assert "changenow-partner-key-456" in hidden
