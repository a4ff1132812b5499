"""Money units and exact conversions (DESIGN.md "Money"). Decimal only, never float."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import models

USD_PLACES = 2
USDT_PLACES = 6
ETH_PLACES = 18

USD_QUANTUM = Decimal(1).scaleb(-USD_PLACES)
USDT_QUANTUM = Decimal(1).scaleb(-USDT_PLACES)
ETH_QUANTUM = Decimal(1).scaleb(-ETH_PLACES)


def percent_of(amount: Decimal, percent: Decimal, quantum: Decimal) -> Decimal:
    """`percent` % of `amount`, rounded half-up to `quantum`."""
    return (amount * percent / Decimal(100)).quantize(quantum, rounding=ROUND_HALF_UP)


def to_base_units(amount: Decimal, places: int) -> int:
    """Exact integer base units (10^-places of the unit: 10^-6 USDT); refuses amounts finer than the unit."""
    scaled = amount.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {places} decimal places")
    return int(scaled)


def from_base_units(units: int, places: int) -> Decimal:
    return Decimal(units).scaleb(-places)


def usd_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=14, decimal_places=USD_PLACES, **kwargs)


def usdt_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=24, decimal_places=USDT_PLACES, **kwargs)


def eth_field(**kwargs: Any) -> models.DecimalField:
    """18 dp: wide enough for any coin amount NOWPayments or ChangeNOW reports."""
    return models.DecimalField(max_digits=36, decimal_places=ETH_PLACES, **kwargs)


def percent_field(**kwargs: Any) -> models.DecimalField:
    return models.DecimalField(max_digits=5, decimal_places=2, **kwargs)
