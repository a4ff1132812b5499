"""An independent price for what NOWPayments says it paid us.

An IPN carries the invoice price (USD) and the outcome (the coins we received). Both come from the
sender, so neither can measure the other: a 30 USD invoice with a 970 ETH outcome is either a
provider error or a forged notification. The exchange provider's quote for 1 ETH -> USDT, kept
fresh by a periodic job, is the third measure: a payment whose outcome is worth more or less
than its invoice beyond PGP_PRICE_TOLERANCE_PERCENT is held for review, and instant payouts are
measured by the value they send, not by the invoice.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from integrations.assets import ETH, USDT_ERC20, Asset, asset_by_nowpayments_code
from integrations.exchange import routing
from integrations.exchange.port import ExchangePair
from pgp_project.money import USD_QUANTUM
from pgp_project.operations.alerts import Subject, alert

from .alerts import REFERENCE_PRICE_STALE
from .models import Payment, ReferencePrice

logger = logging.getLogger(__name__)

REFRESH_REFERENCE_PRICES_TASK = "payments.refresh_reference_prices"
PRICED_ASSET = ETH
QUOTE_PAIR = ExchangePair(ETH, USDT_ERC20)
QUOTE_AMOUNT = Decimal("1")


def quoted_usdt_value(eth_amount: Decimal) -> tuple[Decimal, str]:
    """What this much ETH buys in USDT now, by the best of the exchange providers' quotes (after
    its fee: a slight underestimate), and that provider's name. Provider errors propagate."""
    best = routing.best_quote(QUOTE_PAIR, eth_amount)
    assert best.to_amount is not None
    return best.to_amount, best.provider


def refresh_reference_prices() -> ReferencePrice:
    """Store the provider's price of 1 ETH. Transient provider errors propagate to the task."""
    usdt, source = quoted_usdt_value(QUOTE_AMOUNT)
    price, _ = ReferencePrice.objects.update_or_create(
        asset_symbol=PRICED_ASSET.symbol,
        defaults={"usd_price": usdt / QUOTE_AMOUNT, "source": source, "fetched_at": timezone.now()},
    )
    return price


@dataclass(frozen=True)
class ReadPrice:
    """The priced asset's fresh USD price as already read in another query (None: none fresh)."""

    usd_price: Decimal | None


def alert_if_stale(error: Exception) -> bool:
    """A refresh failed: if the price we hold is too old to check payments against (or there is
    none), say so, at most every PGP_ALERT_REPEAT_SECONDS. True if an alert line was written."""
    oldest = timezone.now() - timedelta(seconds=settings.PGP_REFERENCE_PRICE_MAX_AGE_SECONDS)
    price = ReferencePrice.objects.filter(asset_symbol=PRICED_ASSET.symbol).first()
    if price is not None and price.fetched_at >= oldest:
        return False
    # Throttled per asset, with or without a price row: a provider down since the first start is
    # a lasting condition too, not a line on every refresh.
    return alert(
        REFERENCE_PRICE_STALE,
        Subject("reference_price", PRICED_ASSET.symbol),
        asset=PRICED_ASSET.symbol,
        fetched_at=price.fetched_at.isoformat() if price is not None else "none",
        error=error,
    )


def fresh_price_query() -> QuerySet[ReferencePrice, Any]:
    """The priced asset's fresh price (at most one row: the symbol is unique), usable as a subquery."""
    oldest = timezone.now() - timedelta(seconds=settings.PGP_REFERENCE_PRICE_MAX_AGE_SECONDS)
    return ReferencePrice.objects.filter(asset_symbol=PRICED_ASSET.symbol, fetched_at__gte=oldest).values("usd_price")


def fresh_usd_price(asset: Asset, read: ReadPrice | None = None) -> Decimal | None:
    """The asset's USD price if we hold a fresh one (USDT counts as 1 USD), else None."""
    if asset == USDT_ERC20:
        return Decimal(1)
    if asset != PRICED_ASSET:
        return None
    if read is not None:
        return read.usd_price
    price = fresh_price_query().first()
    return price["usd_price"] if price else None


def reference_value_usd(asset: Asset, amount: Decimal, read: ReadPrice | None = None) -> Decimal | None:
    price = fresh_usd_price(asset, read)
    return None if price is None else (amount * price).quantize(USD_QUANTUM)


def price_outcome_mismatch(payment: Payment, read: ReadPrice | None = None) -> str | None:
    """Why the outcome's worth does not match the invoice, or None when it does or cannot be told
    (no fresh reference price: the payment goes on, and the instant payout is measured by the
    provider's quote before anything is sent). `read`: the price, if the caller read it already."""
    asset = asset_by_nowpayments_code(payment.outcome_currency)
    if asset is None or not payment.outcome_amount:
        return None
    worth = reference_value_usd(asset, payment.outcome_amount, read)
    invoice = payment.price_to_credit
    if worth is None or not invoice:
        return None
    tolerance = Decimal(settings.PGP_PRICE_TOLERANCE_PERCENT) / 100
    if abs(worth - invoice) <= invoice * tolerance:
        return None
    direction = "overpaid" if worth > invoice else "underpaid"
    return (
        f"{direction}: the outcome {payment.outcome_amount} {payment.outcome_currency} is worth about {worth} USD "
        f"at the reference price, against an invoice of {invoice} USD (beyond the "
        f"±{settings.PGP_PRICE_TOLERANCE_PERCENT}% tolerance); route it again once checked"
    )
