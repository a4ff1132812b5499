"""How amounts, gas, times and chain references read in the console and the admin."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pgp_project.money_display import chain_reference, explorer_url, format_amount, format_time, short_hash


@pytest.mark.parametrize(
    ("amount", "unit", "shown"),
    [
        (Decimal("45.605770000000000000"), "usdt", "45.605770 USDT"),
        (Decimal("0.000000000000000000"), "eth", "0 ETH"),
        (Decimal("0.009700000000000000"), "eth", "0.0097 ETH"),
        (Decimal("1234567.000000000000000001"), "eth", "1,234,567.000000000000000001 ETH"),
        (Decimal("19.99"), "USD", "19.99 USD"),
        (Decimal("19.999"), "usd", "19.99 USD"),  # never rounded up
        (Decimal("5"), "usdc", "5.000000 USDC"),
        (None, "eth", "-"),
    ],
)
def test_amounts_are_shown_with_their_unit_and_places(amount: Decimal | None, unit: str, shown: str) -> None:
    assert format_amount(amount, unit) == shown


def test_times_are_shown_to_the_second_with_their_timezone() -> None:
    assert format_time(datetime(2026, 11, 23, 14, 22, 54, 942000, tzinfo=UTC)) == "2026-11-23 14:22:54 UTC"


def test_hashes_are_shortened_and_linked_to_the_chains_explorer(settings) -> None:
    tx = "0x" + "ab" * 32
    assert short_hash(tx) == "0xababab…ababab"
    settings.PGP_BLOCK_EXPLORERS = {"eth": {"tx": "https://etherscan.io/tx/{}"}}
    assert explorer_url("eth", "tx", tx) == f"https://etherscan.io/tx/{tx}"
    assert explorer_url("eth", "address", tx) is None
    assert explorer_url("trx", "tx", tx) is None
    html = str(chain_reference("eth", "tx", tx))
    assert f'href="https://etherscan.io/tx/{tx}"' in html
    assert f'data-copy="{tx}"' in html
    assert "0xababab…ababab" in html
    assert "href" not in str(chain_reference("trx", "tx", "abc"))
