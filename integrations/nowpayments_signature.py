"""NOWPayments IPN signatures: HMAC-SHA512 over the body re-serialised as their JavaScript does.

NOWPayments documents the check as

    hmac('sha512', secret).update(JSON.stringify(sortObject(body))).digest('hex')

where `sortObject` rebuilds every nested object (arrays included: `typeof [] === 'object'`)
with its keys in `Array.prototype.sort()` order. Reproducing that byte for byte needs three
JavaScript behaviours Python's json module does not share:

* numbers: JSON.parse reads every number as an IEEE-754 double and JSON.stringify prints it with
  Number.prototype.toString (`1e-7`, `0.000025`, `123` for `123.0`, `1e+21`);
* key order: sort() compares UTF-16 code units, and an object lists integer-like keys
  ("0", "7", "42") first in ascending numeric order whatever order they were inserted in;
* arrays: sortObject turns an array into an object keyed "0", "1", ...

The double here exists only to print the number exactly as JavaScript would; it never feeds an
amount. Amounts are parsed separately, from the same body, as Decimal.

Two kinds of body are never valid here, on purpose, although NOWPayments' JavaScript would sign
them (the intake refuses both with 400 before it checks a signature):

* a body that is not valid UTF-8 (RFC 8259 requires it). Node reads each bad byte as U+FFFD and
  signs that text, so accepting its signature would verify a text other than the bytes we parse
  and store. Python's json would even read UTF-8-encoded surrogates and UTF-16 bodies.
* a body with a `__proto__` key at any depth. `JSON.parse` keeps it as a key, but sortObject's
  `result[key] = ...` sets the new object's prototype instead, so the signed text drops it while
  our parse keeps it: the two sides would not agree on what was signed.

Nesting is bounded (MAX_NESTING) before the body is parsed, so neither the parser nor the
serialiser below, which recurse once per level, can run out of stack.
"""

import hashlib
import hmac
import json
import re
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from django.views.decorators.debug import sensitive_variables

from .json_depth import nesting_exceeds

MAX_ARRAY_INDEX = 2**32 - 2
# Far above any real notification (2-3 levels) and far below Python's recursion limit: the
# serialiser takes about three frames a level.
MAX_NESTING = 32
PROTOTYPE_KEY = "__proto__"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _JsNumber(float):
    """A JSON number as JavaScript holds it: a double."""


def js_number_to_string(value: float) -> str:
    """ECMAScript Number::toString(10) for a finite double."""
    if value == 0:
        return "0"  # -0 prints as 0 too
    sign = "-" if value < 0 else ""
    shortest = repr(abs(value))
    if "e" not in shortest:
        # Python writes 1e-4 <= |x| < 1e16 positionally, with the same shortest digits that
        # ECMAScript writes positionally (1e-6 <= |x| < 1e21); only "123.0" is "123" there.
        return sign + (shortest[:-2] if shortest.endswith(".0") else shortest)
    # repr() gives the shortest digit string that round-trips, as ECMAScript requires.
    digits_tuple = Decimal(shortest).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    k = len(digits)
    exponent = digits_tuple.exponent
    assert isinstance(exponent, int), "a finite number has an integer exponent"
    n = exponent + k  # value = 0.d1..dk * 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        exponent = n - 1
        exp_text = ("+" if exponent >= 0 else "-") + str(abs(exponent))
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + exp_text
    return sign + body


def _is_array_index(key: str) -> bool:
    return key.isdigit() and key.isascii() and str(int(key)) == key and int(key) <= MAX_ARRAY_INDEX


def _js_key_order(keys: list[str]) -> list[str]:
    """Order of keys after `Object.keys(o).sort()` then re-insertion into a fresh object."""
    if all(key.isascii() for key in keys):
        # ASCII: code points are UTF-16 code units, so Python's order is JavaScript's.
        utf16_sorted = sorted(keys)
    else:
        utf16_sorted = sorted(keys, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    indices = sorted((k for k in utf16_sorted if _is_array_index(k)), key=int)
    return indices + [k for k in utf16_sorted if not _is_array_index(k)]


def _js_string(value: str) -> str:
    text = encode_basestring(value)  # what json.dumps(value, ensure_ascii=False) writes, in C
    # JSON.stringify escapes a lone surrogate as \udxxx instead of emitting invalid UTF-16.
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _serialise(value: Any) -> str:
    if isinstance(value, dict):
        if PROTOTYPE_KEY in value:
            raise ValueError("a __proto__ key is not signed alike by JavaScript")
        return "{" + ",".join(_js_string(k) + ":" + _serialise(value[k]) for k in _js_key_order(list(value))) + "}"
    if isinstance(value, list):
        # sortObject turns arrays into objects keyed by index.
        return _serialise({str(i): item for i, item in enumerate(value)})
    if isinstance(value, str):
        return _js_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "null"
        return js_number_to_string(value)
    raise TypeError(f"unexpected JSON value {type(value).__name__}")


def reject_non_json_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")  # Python accepts NaN/Infinity; JSON does not


def canonical_body(raw_body: bytes) -> bytes:
    """The bytes NOWPayments signs for this body. Raises ValueError for invalid JSON, for a body
    that is not UTF-8, nests deeper than MAX_NESTING or holds a `__proto__` key."""
    text = raw_body.decode("utf-8")  # strict: UnicodeDecodeError is a ValueError
    if nesting_exceeds(raw_body, MAX_NESTING):
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    parsed = json.loads(
        text,
        parse_float=_JsNumber,
        parse_int=_JsNumber,
        # JavaScript's JSON.parse keeps the last of duplicated keys, as dict() does.
        parse_constant=reject_non_json_constant,
    )
    return _serialise(parsed).encode("utf-8", "surrogatepass")


@sensitive_variables("secret")
def sign(raw_body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), canonical_body(raw_body), hashlib.sha512).hexdigest()


@sensitive_variables("secret", "expected")
def is_valid_signature(raw_body: bytes, signature: str | None, secret: str) -> bool:
    """True when `signature` is NOWPayments' HMAC of this body. Invalid JSON is never valid."""
    if not signature or not secret or not signature.isascii():
        return False  # a hex digest is ASCII; compare_digest would raise on anything else
    try:
        expected = sign(raw_body, secret)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, signature.strip().lower())
