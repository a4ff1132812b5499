"""NOWPayments IPN signatures: HMAC-SHA512, keyed by the IPN secret, over the body re-serialised
with its keys sorted. NOWPayments documents that string four ways, which disagree on some bodies;
a signature is accepted when it matches the HMAC of any of them (FORMS, tried in that order):

1. `sortObject`: their current API documentation's Node example,
       hmac.update(JSON.stringify(sortObject(params)))
   where sortObject rebuilds every nested object with its keys sorted (NOWPayments API,
   https://documenter.getpostman.com/view/7907941/2s93JusNJt, "Instant Payments Notifications").
   It is tried first: it is the documented primary form, and the one every real notification we
   have seen verifies with.
2. `replacer`: the same page's step 5, and the older pages' only example,
       JSON.stringify(params, Object.keys(params).sort())
   (https://documenter.getpostman.com/view/7907941/S1a32n38, and the sandbox's
   https://documenter.getpostman.com/view/7907941/T1LSCRHC). A replacer *array* is a list of the
   property names to keep at every depth, so a nested object keeps only the keys that the top level
   also has (the `fee` object becomes `{}`), and keys come in plain string order ("10" before "9").
3. `php`: the PHP example on the first page, `tksort($request_data)` (ksort, recursively) then
   `json_encode($request_data, JSON_UNESCAPED_SLASHES)`: non-ASCII text \\u-escaped, floats in
   PHP's notation (`1.0e-7`), an object whose keys are 0..n-1 (or none) written as an array.
   Older pages' PHP example used a plain ksort: that differs from tksort only in nested objects'
   order, which no other form shares either, so it is not tried separately.
4. `python`: the Python example on the first page,
       json.dumps(message, separators=(',', ':'), sort_keys=True)
   on the body as json.loads reads it: floats in Python's repr (`1e-07`, `123.0`), integers
   exact, non-ASCII text \\u-escaped.

Each form has test vectors made by its own language's serialiser (tests/signature_vectors/).

The JavaScript forms need three behaviours Python's json module does not share:

* numbers: JSON.parse reads every number as an IEEE-754 double and JSON.stringify prints it with
  Number.prototype.toString (`1e-7`, `0.000025`, `123` for `123.0`, `1e+21`);
* key order: sort() compares UTF-16 code units, and an object lists integer-like keys
  ("0", "7", "42") first in ascending numeric order whatever order they were inserted in;
* arrays: sortObject turns an array into an object keyed "0", "1", ... (`typeof [] === 'object'`,
  and its reduce starts from `{}`). Node itself does this with the documented snippet (the
  committed vectors are its output), so it stays: it is what NOWPayments' primary form signs.

The doubles here exist only to print numbers exactly as each language would; they never feed an
amount. Amounts are parsed separately, from the same body, as Decimal.

Two kinds of body are never valid here, on purpose, although NOWPayments' JavaScript would sign
them (the intake refuses both with 400 before it checks a signature):

* a body that is not valid UTF-8 (RFC 8259 requires it). Node reads each bad byte as U+FFFD and
  signs that text, so accepting its signature would verify a text other than the bytes we parse
  and store. Python's json would even read UTF-8-encoded surrogates and UTF-16 bodies.
* a body with a `__proto__` key at any depth. `JSON.parse` keeps it as a key, but sortObject's
  `result[key] = ...` sets the new object's prototype instead, so the signed text drops it while
  our parse keeps it: the two sides would not agree on what was signed.

Nesting is bounded (MAX_NESTING) before the body is parsed, so neither the parsers nor the
serialisers below, which recurse once per level, can run out of stack.
"""

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
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
# The forms after the primary are tried only for a body up to this size. A real notification is
# well under 4 KiB; on a larger body the other three forms would only multiply (by about three)
# the work anyone can make us do by sending a body with a wrong signature.
FALLBACK_MAX_BYTES = 16 * 1024
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


def _checked_text(raw_body: bytes) -> str:
    text = raw_body.decode("utf-8")  # strict: UnicodeDecodeError is a ValueError
    if nesting_exceeds(raw_body, MAX_NESTING):
        raise ValueError(f"nested deeper than {MAX_NESTING} levels")
    return text


def _parse_as_javascript(text: str) -> Any:
    # JavaScript's JSON.parse keeps the last of duplicated keys, as dict() does.
    return json.loads(text, parse_float=_JsNumber, parse_int=_JsNumber, parse_constant=reject_non_json_constant)


def canonical_body(raw_body: bytes) -> bytes:
    """The bytes NOWPayments' primary form (sortObject) signs for this body. Raises ValueError for
    invalid JSON, for a body that is not UTF-8, nests deeper than MAX_NESTING or holds a
    `__proto__` key."""
    parsed = _parse_as_javascript(_checked_text(raw_body))
    return _serialise(parsed).encode("utf-8", "surrogatepass")


# --- form 2: JSON.stringify(params, Object.keys(params).sort()) ---------------------------------


def _replacer_keys(parsed: Any) -> list[str]:
    """`Object.keys(params).sort()`: plain UTF-16 order (the list is used as it is, never
    re-inserted into an object, so integer-like keys are not moved first)."""
    keys = [str(i) for i in range(len(parsed))] if isinstance(parsed, list) else list(parsed)
    if all(key.isascii() for key in keys):
        return sorted(keys)
    return sorted(keys, key=lambda k: k.encode("utf-16-be", "surrogatepass"))


def _serialise_with_property_list(value: Any, keys: list[str]) -> str:
    if isinstance(value, dict):
        if PROTOTYPE_KEY in value:
            raise ValueError("a __proto__ key is not signed alike by JavaScript")
        # The property list applies at every depth: a nested object keeps only its keys that are
        # in the list, in the list's order.
        return (
            "{"
            + ",".join(_js_string(k) + ":" + _serialise_with_property_list(value[k], keys) for k in keys if k in value)
            + "}"
        )
    if isinstance(value, list):
        # An array ignores the property list (its elements are written all, in order).
        return "[" + ",".join(_serialise_with_property_list(item, keys) for item in value) + "]"
    return _serialise(value)


def _replacer_form(parsed_as_javascript: Any) -> bytes:
    keys = list(dict.fromkeys(_replacer_keys(parsed_as_javascript)))
    return _serialise_with_property_list(parsed_as_javascript, keys).encode("utf-8", "surrogatepass")


# --- form 3: PHP's tksort + json_encode($data, JSON_UNESCAPED_SLASHES) ------------------------------

_PHP_INT_MIN, _PHP_INT_MAX = -(2**63), 2**63 - 1
# A string key PHP stores as an integer key (ZEND_HANDLE_NUMERIC_STR): canonical decimal, no "-0".
_PHP_INTEGER_KEY = re.compile(r"-?[1-9][0-9]*|0")
# A numeric string in PHP 8 (is_numeric_string): optional whitespace around, sign, digits with an
# optional fraction and exponent. ksort compares two such keys as numbers.
_PHP_NUMERIC = re.compile(r"[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*")
_PHP_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PHP_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\u0080-\U0010ffff]')


class _PhpFloat(float):
    """A JSON number PHP's json_decode reads as a float."""


def _php_int(literal: str) -> int | float:
    value = int(literal)
    # json_decode reads an integer beyond PHP_INT_MAX as a float (without JSON_BIGINT_AS_STRING).
    return value if _PHP_INT_MIN <= value <= _PHP_INT_MAX else _PhpFloat(literal)


def _php_array(pairs: list[tuple[str, Any]]) -> dict[int | str, Any]:
    # json_decode(..., true) makes every object an array, whose integer-like keys become integers.
    return {
        int(k) if _PHP_INTEGER_KEY.fullmatch(k) and _PHP_INT_MIN <= int(k) <= _PHP_INT_MAX else k: v for k, v in pairs
    }


def _php_compare_keys(a: int | str, b: int | str) -> int:
    """ksort's default (SORT_REGULAR) comparison of two array keys, as in PHP 8."""
    if isinstance(a, int) and isinstance(b, int):
        return (a > b) - (a < b)
    a_numeric = isinstance(a, int) or bool(_PHP_NUMERIC.fullmatch(a))
    b_numeric = isinstance(b, int) or bool(_PHP_NUMERIC.fullmatch(b))
    if a_numeric and b_numeric:
        x, y = float(a), float(b)
        return (x > y) - (x < y)
    # Otherwise as byte strings (an integer key as its decimal text).
    x_bytes, y_bytes = str(a).encode("utf-8", "surrogatepass"), str(b).encode("utf-8", "surrogatepass")
    return (x_bytes > y_bytes) - (x_bytes < y_bytes)


# A key starting otherwise is neither an integer key nor a numeric string.
_PHP_MAYBE_NUMERIC_START = frozenset(" \t\n\r\v\f+-.0123456789")


def _php_ksort(array: dict[int | str, Any]) -> list[tuple[int | str, Any]]:
    if all(isinstance(key, str) and key[:1] not in _PHP_MAYBE_NUMERIC_START for key in array):
        # Every real notification: all keys compare as strings, and code point order is UTF-8's.
        return sorted(array.items())
    return sorted(array.items(), key=functools.cmp_to_key(_php_compare_items))


def _php_compare_items(x: tuple[int | str, Any], y: tuple[int | str, Any]) -> int:
    return _php_compare_keys(x[0], y[0])


def _php_gcvt(value: float) -> str:
    """PHP's json_encode of a float: php_gcvt with serialize_precision -1 (shortest digits that
    round-trip, as repr's), exponential below 1e-4 or from 1e17 on, with at least one decimal."""
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    exponent = digits_tuple.exponent
    assert isinstance(exponent, int), "a finite number has an integer exponent"
    decpt = exponent + len(digits)  # value = 0.d1d2... * 10^decpt
    if (decpt < -3) if decpt < 0 else (decpt > 17):
        power = decpt - 1
        mantissa = digits[0] + "." + (digits[1:] or "0")
        return f"{sign}{mantissa}e{'-' if power < 0 else '+'}{abs(power)}"
    if decpt <= 0:
        return f"{sign}0.{'0' * -decpt}{digits}"
    if len(digits) <= decpt:
        return sign + digits + "0" * (decpt - len(digits))
    return f"{sign}{digits[:decpt]}.{digits[decpt:]}"


def _php_string(value: str) -> str:
    if _LONE_SURROGATE.search(value):
        raise ValueError("json_decode refuses a lone surrogate")

    def escape(found: re.Match[str]) -> str:
        character = found.group()
        if character in _PHP_ESCAPES:
            return _PHP_ESCAPES[character]
        # Without JSON_UNESCAPED_UNICODE, as UTF-16 code units in lower-case hex.
        units = character.encode("utf-16-be", "surrogatepass")
        return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))

    return '"' + _PHP_NEEDS_ESCAPE.sub(escape, value) + '"'


def _php_encode(value: Any) -> str:
    if isinstance(value, dict):
        items = _php_ksort(value)
        if [key for key, _ in items] == list(range(len(items))):
            # A sorted array keyed 0..n-1 (an empty one too) is a list to json_encode.
            return "[" + ",".join(_php_encode(item) for _, item in items) + "]"
        return "{" + ",".join(_php_string(str(k)) + ":" + _php_encode(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_php_encode(item) for item in value) + "]"
    return _php_scalar(value)


def _php_scalar(value: Any) -> str:
    if isinstance(value, str):
        return _php_string(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("json_encode refuses INF and NAN")
        return _php_gcvt(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"unexpected JSON value {type(value).__name__}")


def _php_form(text: str) -> bytes:
    parsed = json.loads(
        text,
        object_pairs_hook=_php_array,
        parse_float=_PhpFloat,
        parse_int=_php_int,
        parse_constant=reject_non_json_constant,
    )
    return _php_encode(parsed).encode()


# --- form 4: Python's json.dumps(message, separators=(',', ':'), sort_keys=True) --------------------


def _python_form(text: str) -> bytes:
    parsed = json.loads(text, parse_constant=reject_non_json_constant)
    # Their snippet verbatim: ensure_ascii (the default) escapes all non-ASCII text, so the result is
    # ASCII, lone surrogates included.
    return json.dumps(parsed, separators=(",", ":"), sort_keys=True).encode()


FORMS = ("sortObject", "replacer", "php", "python")


def canonical_forms(raw_body: bytes) -> Iterator[tuple[str, bytes]]:
    """(form, the bytes it signs) for each documented form, lazily and in FORMS order, so that a
    caller who finds a match stops before the others are computed. A form that cannot sign this
    body (PHP refuses a lone surrogate, an infinite float) is left out. Raises ValueError, before
    yielding anything, for a body no form may verify (see canonical_body)."""
    text = _checked_text(raw_body)
    parsed = _parse_as_javascript(text)
    yield FORMS[0], _serialise(parsed).encode("utf-8", "surrogatepass")
    builders: tuple[tuple[str, Callable[[], bytes]], ...] = (
        (FORMS[1], lambda: _replacer_form(parsed)),
        (FORMS[2], lambda: _php_form(text)),
        (FORMS[3], lambda: _python_form(text)),
    )
    for name, build in builders:
        try:
            yield name, build()
        except (ValueError, TypeError, RecursionError):
            continue


@sensitive_variables("secret")
def sign(raw_body: bytes, secret: str, form: str = FORMS[0]) -> str:
    """The HMAC NOWPayments would send for this body, signed in `form` (their primary by default)."""
    for name, canonical in canonical_forms(raw_body):
        if name == form:
            return hmac.new(secret.encode(), canonical, hashlib.sha512).hexdigest()
    raise ValueError(f"the {form} form cannot sign this body")


@sensitive_variables("secret", "key", "expected")
def matching_form(raw_body: bytes, signature: str | None, secret: str) -> str | None:
    """The documented form whose HMAC of this body is `signature`, or None. The primary form is
    computed and compared first; the others only when it does not match, and the body is at most
    FALLBACK_MAX_BYTES. Each comparison is
    constant-time, and a canonical text that an earlier form produced already is not hashed again."""
    if not signature or not secret or not signature.isascii():
        return None  # a hex digest is ASCII; compare_digest would raise on anything else
    received = signature.strip().lower()
    key = secret.encode()
    tried: set[bytes] = set()
    try:
        for form, canonical in canonical_forms(raw_body):
            if canonical in tried:
                continue
            tried.add(canonical)
            expected = hmac.new(key, canonical, hashlib.sha512).hexdigest()
            if hmac.compare_digest(expected, received):
                return form
            if len(raw_body) > FALLBACK_MAX_BYTES:
                return None
    except (ValueError, TypeError):
        return None
    return None


@sensitive_variables("secret")
def is_valid_signature(raw_body: bytes, signature: str | None, secret: str) -> bool:
    """True when `signature` is NOWPayments' HMAC of this body in any documented form. Invalid JSON
    is never valid."""
    return matching_form(raw_body, signature, secret) is not None
