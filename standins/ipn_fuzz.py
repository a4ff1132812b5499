"""Hostile and malformed IPN requests, reproducible from a seed: the fuzz corpus behind
`manage.py fuzz_ipn` (over HTTP against a running server) and the intake test that replays it.

Each case is a body and a signature header as bytes (a header is bytes on the wire: it may be
anything, non-ASCII included). Most are unsigned or wrongly signed, and must change no money;
some are signed with the real secret, so the checks behind the signature are fuzzed too. Bodies
NOWPayments' JavaScript would sign but we refuse (invalid UTF-8, a `__proto__` key) are signed as
that JavaScript signs them.

About a fifth of the cases are sent over a raw socket (`framing`, see `wire_request`), most with
framing no HTTP library sends: chunked bodies with bad chunk sizes, missing chunk terminators or
bad trailers, bodies that stop early and then close, reset or stall, an unknown transfer coding,
headers that stall. A stalled case costs the server's read timeout (GUNICORN_READ_TIMEOUT), so
they are few. The Django test client replays the bodies alone.
"""

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from integrations.nowpayments_signature import PROTOTYPE_KEY, sign
from payments.intake import PAYMENT_FIELDS

# Values no field should choke on: wrong types, characters PostgreSQL refuses, numbers beyond
# every range, exponents no Decimal holds, huge strings.
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    [],
    {},
    {"nested": [1, {"deeper": None}]},
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\U0001f4b8",
    "é" * 50,
    "x" * 5000,
    "finished\x00",
    -1,
    0,
    2**63,
    2**64 + 1,
    10**30,
    -(10**30),
    1.5,
    -0.0,
    1e308,
    "1e999999999",
    "NaN",
    "Infinity",
    "-0",
    "0x10",
    "PGP-7|-1001234567890",
    "PGP-999999999999999999999|x",
]
# Numbers written as raw JSON text: json.dumps cannot produce these.
RAW_NUMBERS = [
    "1e999999999",
    "1e99999999999999999999",
    "-1e99999999999999999999",
    "1e-99999999999999999999",
    "1E+400",
    "0.000000000000000000000000000000000000001",
    "9" * 400,
    "-0",
    "1" + "0" * 4300,
]
FIELDS = ["payment_id", "payment_status", *PAYMENT_FIELDS, "extra_field"]
HOSTILE_SIGNATURES = [
    b"",
    b" ",
    b"\xe9\xe9\xe9",
    "é".encode() * 64,
    b"\xff" * 128,
    b"0" * 128,
    b"g" * 128,
    b"\x00" * 128,
    b"a" * 100000,
]


@dataclass(frozen=True)
class FuzzCase:
    kind: str
    body: bytes
    signature: bytes | None
    # Signed with the real secret: it may be accepted, and may legitimately record a payment.
    validly_signed: bool
    # How it goes on the wire: "content_length" (an ordinary request), or one of WIRE_FRAMINGS.
    framing: str = "content_length"


def base_ipn(rng: random.Random) -> dict[str, Any]:
    return {
        "payment_id": rng.randrange(1, 10**12),
        "payment_status": rng.choice(["waiting", "confirming", "finished", "partially_paid", "refunded", "failed"]),
        "pay_address": "0xd1cDE08A07cD25adEbEd35c3867a59228C09B606",
        "price_amount": round(rng.uniform(1, 500), 2),
        "price_currency": "usd",
        "pay_amount": round(rng.uniform(0.0001, 0.5), 8),
        "actually_paid": round(rng.uniform(0.0001, 0.5), 8),
        "pay_currency": "eth",
        "order_id": f"PGP-{rng.randrange(1, 99)}|-100{rng.randrange(10**9, 10**10)}",
        "order_description": "Channel subscription",
        "outcome_amount": round(rng.uniform(0.0001, 0.5), 8),
        "outcome_currency": rng.choice(["eth", "usdterc20", "btc"]),
    }


def _mutated_body(rng: random.Random) -> tuple[str, bytes]:
    body = base_ipn(rng)
    choice = rng.randrange(9)
    if choice == 0:
        body[rng.choice(FIELDS)] = rng.choice(HOSTILE_VALUES)
        return "hostile_value", dumps_as_javascript(body)
    if choice == 1:
        for field in rng.sample(FIELDS, 3):
            body[field] = rng.choice(HOSTILE_VALUES)
        return "hostile_values", dumps_as_javascript(body)
    if choice == 2:
        field = rng.choice(FIELDS)
        body[field] = "__RAW__"
        return "raw_number", dumps_as_javascript(body).replace(b'"__RAW__"', rng.choice(RAW_NUMBERS).encode())
    if choice == 3:
        raw = dumps_as_javascript(body)
        return "truncated", raw[: rng.randrange(len(raw))]
    if choice == 4:
        flipped = bytearray(dumps_as_javascript(body))
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return "byte_flips", bytes(flipped)
    if choice < 8:
        return (_deeply_nested, _prototype_key, _not_utf8)[choice - 5](rng, body)
    return "not_an_object", dumps_as_javascript(rng.choice([[body], "text", 42, None, [], body["payment_id"]]))


def _deeply_nested(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    """Arrays and objects nested from just past the intake's limit to far past the parser's."""
    depth = rng.choice([3, 8, 9, 10, 33, 500, 990, 1000, 3000, 20000, 30000])
    shape = rng.randrange(4)
    if shape == 0:
        return f"deep_arrays_{depth}", b"[" * depth + b"]" * depth
    if shape == 1:
        return f"deep_open_arrays_{depth}", b"[" * min(depth, 60000)
    if shape == 2:
        return f"deep_objects_{depth}", b'{"a":' * depth + b"1" + b"}" * depth
    # A whole notification with one of its fields nested: the attack's "signed" deep object.
    raw = dumps_as_javascript(body)
    field = b'"deep":' + b'{"a":' * depth + b"null" + b"}" * depth + b","
    return f"deep_field_{depth}", raw[:1] + field + raw[1:]


def _prototype_key(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    key = rng.choice(['"__proto__"', '"\\u005f_proto__"', '"__pro\\u0074o__"'])
    value = rng.choice(['{"payment_status": "finished"}', "null", "1", '"x"', "[]"])
    raw = dumps_as_javascript(body)
    if rng.random() < 0.5:
        return "proto_key", raw[:1] + f"{key}: {value}, ".encode() + raw[1:]
    return "proto_key_nested", raw[:-1] + f', "fee": {{{key}: {value}, "currency": "eth"}}}}'.encode()


# Not UTF-8: a stray continuation byte, a lone lead byte, an overlong "/", an encoded surrogate
# (Python's json would read it), a cut 4-byte sequence, bytes UTF-8 never uses.
INVALID_UTF8 = [b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf0\x9f\x92", b"\xff\xfe", b"\xf8\x88\x80\x80\x80"]


def _not_utf8(rng: random.Random, body: dict[str, Any]) -> tuple[str, bytes]:
    choice = rng.randrange(4)
    if choice == 0:
        return "utf16", json.dumps(body).encode(rng.choice(["utf-16", "utf-16-le", "utf-32"]))
    if choice == 1:
        return "utf8_bom", b"\xef\xbb\xbf" + dumps_as_javascript(body)
    body[rng.choice(["order_description", "pay_currency", "order_id", "extra_field"])] = "__BAD__"
    return "invalid_utf8", dumps_as_javascript(body).replace(b"__BAD__", b"ok" + rng.choice(INVALID_UTF8) + b"ok")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps_as_javascript(value: Any, **json_options: Any) -> bytes:
    """UTF-8 JSON as JavaScript's JSON.stringify writes it: a lone surrogate (which UTF-8 cannot
    carry) as its \\u escape."""
    text = json.dumps(value, ensure_ascii=False, **json_options)
    return _LONE_SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode()


def javascript_signature(body: bytes, secret: str) -> bytes:
    """The signature NOWPayments' JavaScript would send for this body. Where our canonical form
        refuses the body, it is signed as that JavaScript signs it: Node reads bytes that are not UTF-8
        as U+FFFD, and sortObject drops a `__proto__` key. Raises where JavaScript could not sign it, or
    we cannot reproduce how (nesting past MAX_NESTING)."""
    try:
        return sign(body, secret).encode()
    except ValueError:
        pass
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        raise ValueError("JSON.parse refuses a byte order mark")
    parsed = json.loads(
        text, object_pairs_hook=lambda pairs: {key: value for key, value in pairs if key != PROTOTYPE_KEY}
    )
    return sign(dumps_as_javascript(parsed), secret).encode()


# Broken framing, sent over a raw socket (see wire_request). The stalled ones hold a server thread
# for its read timeout, so they are drawn far less often.
WIRE_FRAMINGS = [
    "chunked",
    "chunked_bad_size",
    "chunked_missing_terminator",
    "chunked_bad_trailer",
    "chunked_cut_then_close",
    "short_then_close",
    "short_then_reset",
    "unknown_transfer_coding",
]
STALLED_FRAMINGS = ["chunked_cut_then_stall", "short_then_stall", "headers_then_stall"]


def _framing(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.005:
        return rng.choice(STALLED_FRAMINGS)
    if roll < 0.2:
        return rng.choice(WIRE_FRAMINGS)
    return "content_length"


def wire_request(case: FuzzCase, path: str, headers: dict[str, str]) -> bytes:
    """The bytes a raw-socket client sends for `case` (its framing broken as named); after them it
    half-closes, resets or stalls (see `ending`)."""
    head = [f"POST {path} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    lines = [line.encode() for line in head]
    if case.signature is not None:
        lines.append(b"x-nowpayments-sig: " + case.signature)
    body = case.body
    if case.framing == "headers_then_stall":
        return b"\r\n".join(lines) + b"\r\nContent-Le"  # the server never learns where the headers end
    if case.framing == "unknown_transfer_coding":
        lines.append(b"Transfer-Encoding: x-unknown")
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
    if case.framing.startswith("short"):
        # Content-Length promises more than is sent: part of the body at most.
        lines.append(f"Content-Length: {len(body) + 1 + len(body) // 2}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body[: len(body) // 2 + 1]
    lines.append(b"Transfer-Encoding: chunked")
    chunks = [body[i : i + 97] for i in range(0, len(body), 97)] or [b""]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk)
    if case.framing == "chunked_bad_size":
        framed = b"zz\r\n" + framed
    elif case.framing == "chunked_missing_terminator":
        framed = b"%x\r\n%sXX" % (len(body) // 2, body[: len(body) // 2]) + framed
    elif case.framing.startswith("chunked_cut"):
        framed = framed[: len(framed) // 2]
    ending = b"" if case.framing.startswith("chunked_cut") else b"0\r\n\r\n"
    if case.framing == "chunked_bad_trailer":
        ending = b"0\r\nno colon in this trailer\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + framed + ending


def ending(framing: str) -> str:
    """What the client does once it has sent the request: "half_close" (it sends nothing more and
    reads the answer), "reset" (it goes away) or "stall" (it waits for the answer, sending nothing)."""
    if framing.endswith("stall"):
        return "stall"
    if framing.endswith("reset"):
        return "reset"
    return "half_close"


def families(case: FuzzCase) -> list[str]:
    """The attack families a case belongs to, for the run's summary."""
    named = {"deep": "deep nesting", "proto": "__proto__ key", "invalid_utf8": "not UTF-8", "utf16": "not UTF-8"}
    found = [family for part, family in named.items() if part in case.kind]
    if "utf8_bom" in case.kind:
        found.append("byte order mark")
    if case.framing.startswith("chunked"):
        found.append("chunked framing" if case.framing == "chunked" else "broken chunked framing")
    elif case.framing.startswith("short"):
        found.append("body stopping early")
    elif case.framing != "content_length":
        found.append(case.framing.replace("_", " "))
    return found


def fuzz_cases(count: int, secret: str, seed: int = 20261123) -> Iterator[FuzzCase]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    for _ in range(count):
        roll = rng.random()
        framing = _framing(rng)
        if roll < 0.05:
            yield FuzzCase("random_bytes", rng.randbytes(rng.randrange(0, 2048)), b"00", False, framing)
            continue
        if roll < 0.08:
            oversized = b"{" + b" " * (64 * 1024 + rng.randrange(1, 4096)) + b"}"
            yield FuzzCase("oversized", oversized, b"00", False, "content_length")
            continue
        kind, body = _mutated_body(rng)
        how = rng.random()
        if how < 0.35:
            try:
                signature = javascript_signature(body, secret)
            except (ValueError, TypeError, RecursionError, OverflowError):
                signature = b"0" * 128  # a body no JSON parser takes cannot be signed
            yield FuzzCase(f"signed_{kind}", body, signature, True, framing)
        elif how < 0.55:
            yield FuzzCase(f"{kind}_hostile_signature", body, rng.choice(HOSTILE_SIGNATURES), False, framing)
        elif how < 0.65:
            yield FuzzCase(f"{kind}_no_signature", body, None, False, framing)
        else:
            try:
                signature = javascript_signature(body, "not-the-secret")
            except (ValueError, TypeError, RecursionError, OverflowError):
                signature = b"f" * 128
            yield FuzzCase(f"{kind}_wrong_secret", body, signature, False, framing)
