"""Quotes: a fixed USD price per currency and a percentage fee, all in Decimal."""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext

from standins.sandbox_changenow.assets import Asset

# Enough digits that a cross rate such as BTC/TRX loses nothing before the final rounding.
_RATE_PRECISION = 40
# Minimum amounts are shown to at most 8 decimal places, as ChangeNOW does.
_MIN_AMOUNT_PLACES = 8


@dataclass(frozen=True)
class Pricing:
    usd_prices: Mapping[str, Decimal]
    fee_percent: Decimal
    min_amount_usd: Decimal
    max_amount_usd: Decimal | None = None  # None: no maximum, as /v2/exchange/range may answer

    def supports(self, from_asset: Asset, to_asset: Asset) -> bool:
        return (
            from_asset.key != to_asset.key
            and from_asset.currency in self.usd_prices
            and to_asset.currency in self.usd_prices
        )

    def net_rate(self, from_asset: Asset, to_asset: Asset) -> Decimal:
        """How much of to_asset one unit of from_asset buys, after the fee."""
        with localcontext() as context:
            context.prec = _RATE_PRECISION
            gross = self.usd_prices[from_asset.currency] / self.usd_prices[to_asset.currency]
            return gross * (Decimal(100) - self.fee_percent) / Decimal(100)

    def min_amount(self, from_asset: Asset) -> Decimal:
        """The smallest deposit accepted: min_amount_usd worth, rounded up."""
        places = min(from_asset.decimals, _MIN_AMOUNT_PLACES)
        with localcontext() as context:
            context.prec = _RATE_PRECISION
            amount = self.min_amount_usd / self.usd_prices[from_asset.currency]
        return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_UP)

    def max_amount(self, from_asset: Asset, max_amount_usd: Decimal | None = None) -> Decimal | None:
        """The largest deposit accepted: max_amount_usd worth (or the one given), rounded down."""
        limit = self.max_amount_usd if max_amount_usd is None else max_amount_usd
        if limit is None:
            return None
        places = min(from_asset.decimals, _MIN_AMOUNT_PLACES)
        with localcontext() as context:
            context.prec = _RATE_PRECISION
            amount = limit / self.usd_prices[from_asset.currency]
        return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def amount_to(amount_from: Decimal, net_rate: Decimal, to_asset: Asset) -> Decimal:
    """What amount_from buys at net_rate, rounded down to to_asset's precision (never overpay)."""
    with localcontext() as context:
        context.prec = _RATE_PRECISION
        return (amount_from * net_rate).quantize(to_asset.quantum, rounding=ROUND_DOWN)


def net_of_fixed_fee(amount: Decimal, fee: Decimal) -> Decimal:
    """What is left of `amount` once a fixed fee in the same asset is taken (never below 0)."""
    return max(amount - fee, Decimal(0))
