"""Assets are declared once, in integrations.assets: the payout currency choices, the database
constraint on them, the places amounts are shown and exported with, and the units of provider
codes all follow from that declaration. These tests fail when a copy appears that could drift."""

import ast
import re
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import CheckConstraint, Q

from console.statements import shown_amount
from integrations.assets import (
    _ASSETS,
    client_payout_currencies,
    client_payout_currency_choices,
    fixed_display_places,
    unit_symbol,
)
from payments.models import Client
from pgp_project.money import USD_PLACES
from pgp_project.money_display import FIXED_PLACES, format_amount
from standins.sandbox_changenow import assets as sandbox

from ..conftest import PROJECT_ROOT

REGISTRY = "integrations/assets.py"
# ChangeNOW's own catalogue, as its stand-in serves it: a separate system's list, which must not
# follow ours by construction (it is checked against ours below instead).
SANDBOX_CATALOGUE = "standins/sandbox_changenow/assets.py"


def _currency_constraint() -> CheckConstraint:
    found = [c for c in Client._meta.constraints if c.name == "client_currency_valid"]
    assert len(found) == 1
    assert isinstance(found[0], CheckConstraint)
    return found[0]


def test_the_payout_currency_choices_are_the_registrys_client_currencies() -> None:
    field = Client._meta.get_field("payout_currency")
    assert list(field.choices) == client_payout_currency_choices()
    assert [value for value, _ in client_payout_currency_choices()] == client_payout_currencies()
    assert field.max_length is not None
    assert max(len(symbol) for symbol in client_payout_currencies()) <= field.max_length


def test_the_currency_check_constraint_lists_the_registrys_client_currencies() -> None:
    assert _currency_constraint().condition == Q(payout_currency__in=client_payout_currencies())


@pytest.mark.django_db
def test_the_database_constraint_as_migrated_lists_the_registrys_client_currencies() -> None:
    """The migrations, not only the model: a registry change without its migration fails here."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", ["client_currency_valid"]
        )
        (definition,) = cursor.fetchone()
    assert sorted(re.findall(r"'([^']*)'::", definition)) == sorted(client_payout_currencies())


def test_every_asset_is_shown_and_exported_with_its_declared_places() -> None:
    registered = dict(FIXED_PLACES)
    assert registered == {"USD": USD_PLACES, **fixed_display_places()}
    amount = Decimal("1234.123456789012345678")
    for known in _ASSETS:
        unit = known.symbol.upper()
        shown = format_amount(amount, known.symbol)
        exported = shown_amount(amount, unit)
        if known.display_places is None:
            assert shown == f"1,234.123456789012345678 {unit}", known
            assert exported == amount, known
        else:
            places = known.display_places
            assert shown == f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):,.{places}f} {unit}"
            assert exported.as_tuple().exponent == -places, known


def test_a_unit_has_one_display_rule_on_every_chain() -> None:
    fixed_display_places()  # raises on a unit declared with different places on two chains


def test_every_code_names_one_unit() -> None:
    """unit_symbol reads a symbol, a NOWPayments code or a ChangeNOW ticker: one code meaning two
    units would make the unit depend on the registry's order."""
    units: dict[str, set[str]] = {}
    for known in _ASSETS:
        for code in filter(None, (known.symbol, known.nowpayments_code, known.ticker)):
            units.setdefault(code, set()).add(known.symbol.upper())
    assert {code: found for code, found in units.items() if len(found) > 1} == {}
    assert all(unit_symbol(code) in found for code, found in units.items())


def test_the_registry_declares_each_asset_once_with_sane_decimals() -> None:
    keys = [known.key for known in _ASSETS]
    assert len(keys) == len(set(keys))
    tickers = [known.ticker for known in _ASSETS]
    assert len(tickers) == len(set(tickers))
    for known in _ASSETS:
        assert 0 < known.decimals <= 18, known
        assert known.display_places is None or known.display_places <= known.decimals, known


def test_the_exchange_stand_in_agrees_with_the_registry_on_what_both_list() -> None:
    """The sandbox keeps ChangeNOW's catalogue (more assets than we pay in, its own formats);
    where it lists one of ours, decimals and ticker must be the same, or our tests would pass
    against an exchange that does not behave like ChangeNOW."""
    disagreeing = {
        known.key: ((known.decimals, known.ticker), (theirs.decimals, theirs.legacy_ticker))
        for known in _ASSETS
        if (theirs := sandbox.ASSETS.get((known.symbol, known.chain))) is not None
        and (theirs.decimals, theirs.legacy_ticker) != (known.decimals, known.ticker)
    }
    assert disagreeing == {}


def _registry_codes() -> set[str]:
    return {code for known in _ASSETS for code in (known.symbol, known.ticker, known.nowpayments_code) if code}


def _tables_outside_the_registry(source: str, codes: set[str]) -> list[str]:
    """Literal tables in `source` that restate the registry: a mapping from two or more asset
    codes to places or units, or a list of five or more of its currencies (choices, say)."""
    units = {known.symbol.upper() for known in _ASSETS}
    found = []
    for node in ast.walk(ast.parse(source)):
        named: list[ast.expr] = []
        if isinstance(node, ast.Dict):
            restated = [
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant)
                and str(key.value).lower() in codes
                and (
                    (isinstance(value, ast.Constant) and (isinstance(value.value, int) or value.value in units))
                    or (isinstance(value, ast.Name) and value.id.endswith(("_PLACES", "_DECIMALS")))
                )
            ]
            if len(restated) >= 2:
                found.append(f"line {node.lineno}: a mapping from asset codes to places or units")
        elif isinstance(node, ast.List | ast.Tuple | ast.Set):
            named = node.elts
        elif isinstance(node, ast.ClassDef):  # an enum of currencies (TextChoices)
            named = [
                statement.value.elts[0]
                if isinstance(statement.value, ast.Tuple) and statement.value.elts
                else statement.value
                for statement in node.body
                if isinstance(statement, ast.Assign)
            ]
        currencies = {e.value.lower() for e in named if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if len(currencies & codes) >= 5 and isinstance(node, ast.stmt | ast.expr):
            found.append(f"line {node.lineno}: a list of currencies")
    return found


def test_the_tables_the_registry_replaced_would_be_caught() -> None:
    codes = _registry_codes()
    old_places = 'PLACES = {"USD": USD_PLACES, "USDT": USDT_PLACES, "USDC": USDT_PLACES}'
    old_units = 'UNIT_OF_SOURCE = {"usdterc20": "USDT", "eth": "ETH"}'
    old_choices = 'class PayoutCurrency:\n    BTC = "btc", "BTC"\n    ETH = "eth", "ETH"\n    USDT = "usdt", "USDT"\n'
    old_choices += '    USDC = "usdc", "USDC"\n    LTC = "ltc", "LTC"\n'
    for source in (old_places, old_units, old_choices):
        assert _tables_outside_the_registry(source, codes), source


def test_no_currency_or_decimals_table_outside_the_registry() -> None:
    codes = _registry_codes()
    skipped = {REGISTRY, SANDBOX_CATALOGUE}
    found = {}
    for path in sorted(PROJECT_ROOT.rglob("*.py")):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        top = relative.split("/")[0]
        if top in (".venv", "node_modules", "tests") or "/migrations/" in relative or relative in skipped:
            continue
        if tables := _tables_outside_the_registry(Path(path).read_text(), codes):
            found[relative] = tables
    assert found == {}, "derive these from integrations.assets instead"
