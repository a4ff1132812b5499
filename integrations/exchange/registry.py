"""The exchange providers, configured in settings.PGP_EXCHANGES like the chains in PGP_CHAINS
(name -> {adapter, url, api_key_env, enabled, ...}): a second provider is one adapter module and
one entry there. Each adapter is built once per process and reached metered (metering.py), so
every call counts toward its health; the direct transfer (the same asset on both sides) needs no
provider and is built in.
"""

import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .direct import DirectTransfer
from .metering import MeteredProvider
from .port import ExchangePair, ExchangeProvider

DIRECT_TRANSFER = "direct"


def exchange_config(name: str) -> Mapping[str, Any]:
    try:
        config: Mapping[str, Any] = settings.PGP_EXCHANGES[name]
    except KeyError:
        raise LookupError(f"exchange provider {name!r} is not configured in PGP_EXCHANGES") from None
    return config


def exchange_provider(name: str) -> ExchangeProvider:
    """The named provider (the one a batch stored, say), enabled or not: an exchange already
    created with a provider is followed there even after routing stops choosing it."""
    return _built(name)


def configured_providers() -> list[str]:
    return list(settings.PGP_EXCHANGES)


def provider_names() -> list[str]:
    """Every name a batch may store: the configured providers and the direct transfer."""
    return sorted({*settings.PGP_EXCHANGES, DIRECT_TRANSFER})


def enabled_providers() -> list[str]:
    return [name for name, config in settings.PGP_EXCHANGES.items() if config.get("enabled", True)]


def candidate_providers(pair: ExchangePair) -> list[str]:
    """Who may exchange this pair: the direct transfer for the same asset on both sides, else
    every enabled provider that trades it, in settings order."""
    if pair.is_direct:
        return [DIRECT_TRANSFER]
    return [name for name in enabled_providers() if exchange_provider(name).supports(pair)]


def provider_before_quotes(pair: ExchangePair) -> str:
    """What a new batch names as its provider: the direct transfer is known at once; any other
    pair is routed when it is quoted (empty until then)."""
    return DIRECT_TRANSFER if pair.is_direct else ""


@functools.cache
def _built(name: str) -> ExchangeProvider:
    if name == DIRECT_TRANSFER:
        return DirectTransfer()
    config = exchange_config(name)
    return MeteredProvider(import_string(config["adapter"])(name, config))


@receiver(setting_changed)
def _forget_providers(*, setting: str, **_: Any) -> None:
    """Tests that reconfigure the providers get adapters built from the new configuration."""
    if setting == "PGP_EXCHANGES":
        _built.cache_clear()
