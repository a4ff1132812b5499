"""JSON for the sandbox: amounts are Decimal in and out, a float never appears.

ChangeNOW sends amounts as JSON numbers. Python's json module would read them as floats and can
only write floats as numbers, so reading uses parse_float=Decimal and writing goes through a
small encoder that prints a Decimal as the exact number literal.

(Amounts as numbers: the request and response examples of ChangeNOW's API v2 documentation,
https://documenter.getpostman.com/view/8180765/SVfTPnM8.)
"""

import json
from decimal import Decimal
from typing import Any


def loads(body: bytes | str) -> Any:
    """Parse JSON with every non-integer number as an exact Decimal."""
    return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; an amount of NaN must never get as far as arithmetic.
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any) -> bytes:
    """Serialise dicts, lists, strings, ints, bools, None and Decimals (as plain number literals)."""
    return _encode(value).encode()


def decimal_literal(value: Decimal) -> str:
    """A Decimal as JavaScript would print the same number: no exponent, no trailing zeros."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as JSON")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_literal(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{_encode(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"cannot encode {type(value).__name__} as sandbox JSON (floats are refused on purpose)")
