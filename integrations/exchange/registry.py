"""Which exchange provider a batch uses, chosen by name from settings.PGP_EXCHANGE_PROVIDERS (a
map of name -> adapter class path, as django-payments does with PAYMENT_VARIANTS). A second
provider is one adapter module and one entry in that map."""

from django.conf import settings

from pgp_project.operations.adapters import load_adapter

from .port import ExchangePair, ExchangeProvider

DIRECT_TRANSFER = "direct"


def exchange_provider(name: str) -> ExchangeProvider:
    provider: ExchangeProvider = load_adapter("PGP_EXCHANGE_PROVIDERS", name)
    return provider


def provider_name_for(pair: ExchangePair) -> str:
    """Same asset on both sides needs no exchange: the direct transfer. Anything else goes
    through the provider configured for exchanges (PGP_EXCHANGE_PROVIDER)."""
    return DIRECT_TRANSFER if pair.is_direct else settings.PGP_EXCHANGE_PROVIDER
