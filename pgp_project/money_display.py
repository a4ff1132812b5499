"""Money, times and chain references as an operator reads them: every page of the console and
the admin formats through here, so an amount looks the same wherever it is shown.

- ETH (and any 18-decimal coin) up to 18 decimal places with trailing zeros dropped, USD 2, a unit
  registered with fixed places (USDT 6) with those, always with the unit: `0.0097 ETH`,
  `45.605770 USDT`, `19.99 USD`.
- Times to the second with their timezone.
- Hashes and addresses shortened for lists, linked to the chain's block explorer
  (`PGP_BLOCK_EXPLORERS`, per chain), the full value kept for copying.
"""

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .money import ETH_PLACES, USD_PLACES

# Fixed places per unit; any other unit (a coin of 18 or fewer decimals) shows what it holds.
# USD is the kernel's own unit; the assets' places are declared in their registry, which the
# kernel cannot import: the app that owns them registers them at start-up
# (register_fixed_places).
FIXED_PLACES: dict[str, int] = {"USD": USD_PLACES}


def register_fixed_places(places: Mapping[str, int]) -> None:
    """Show each unit ("USDT") with its fixed places. Registering a unit again with the same
    places is harmless (a test re-running ready()); with other places it is a mistake."""
    for unit, count in places.items():
        code = unit.upper()
        if FIXED_PLACES.setdefault(code, count) != count:
            raise ValueError(f"{code} is already shown with {FIXED_PLACES[code]} places, not {count}")


def fixed_places(unit: str) -> int | None:
    """The fixed places `unit` is shown with, or None: as many as the amount holds."""
    return FIXED_PLACES.get(unit.upper())


def format_amount(amount: Decimal | int | str | None, unit: str) -> str:
    """`1234.5 ETH`, `45.605770 USDT`, `19.99 USD`; '-' for no amount. Never rounds an amount
    up: a fixed-place unit is truncated to its places (stored amounts already fit them)."""
    if amount is None or amount == "":
        return "-"
    value = Decimal(str(amount))
    code = unit.upper()
    places = fixed_places(code)
    if places is not None:
        text = f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):,.{places}f}"
    else:
        text = _without_trailing_zeros(value.quantize(Decimal(1).scaleb(-ETH_PLACES), rounding=ROUND_DOWN))
    return f"{text} {code}"


def _without_trailing_zeros(value: Decimal) -> str:
    text = f"{value:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_time(moment: datetime | None) -> str:
    """`2026-11-23 14:22:54 UTC`: to the second, in the configured timezone, which is named."""
    if moment is None:
        return "-"
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


def short_hash(value: str, *, keep: int = 6) -> str:
    """`ab12cd…cdef` for a long hash or address; short values unchanged."""
    if not value or len(value) <= 2 * keep + 3:
        return value or ""
    head = keep + 2 if value.startswith("0x") else keep
    return f"{value[:head]}…{value[-keep:]}"


def explorer_url(chain: str, kind: str, value: str) -> str | None:
    """The block explorer's page for a transaction (`kind="tx"`) or an address (`"address"`), from
    the URL templates in PGP_BLOCK_EXPLORERS[chain][kind] (`{}` is the value); none configured
    (the local chain, say): no link."""
    template = settings.PGP_BLOCK_EXPLORERS.get(chain.lower(), {}).get(kind, "") if value else ""
    return template.replace("{}", value) if template else None


def destination_reference(chain: str, address: str, memo: str) -> SafeString | str:
    """A payout address with its memo or destination tag, when it has one: both are the
    destination, and an operator comparing them with a client's request needs both."""
    shown = chain_reference(chain, "address", address)
    return format_html("{} · memo <code>{}</code>", shown, memo) if memo else shown


def chain_reference(chain: str, kind: str, value: str | None) -> SafeString | str:
    """A hash or address as the console shows it: shortened, linked to the explorer when one is
    configured, the full value in the title and in `data-copy` for the copy button."""
    if not value:
        return "-"
    url = explorer_url(chain, kind, value)
    if url is None:
        return format_html(
            '<span class="chain-ref" title="{}" data-copy="{}">{}</span>', value, value, short_hash(value)
        )
    return format_html(
        '<a class="chain-ref" href="{}" title="{}" data-copy="{}" rel="noopener noreferrer" target="_blank">{}</a>',
        url,
        value,
        value,
        short_hash(value),
    )
