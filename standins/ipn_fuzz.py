"""Hostile and malformed IPN requests, reproducible from a seed: the fuzz corpus behind
`manage.py fuzz_ipn` (over HTTP against a running server) and the intake test that replays it.

Each case is a body and a signature header as bytes (a header is bytes on the wire: it may be
anything, non-ASCII included). Most are unsigned or wrongly signed, and must change no money;
some are signed with the real secret, so the checks behind the signature are fuzzed too.
"""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from integrations.nowpayments_signature import sign
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
    choice = rng.randrange(7)
    if choice == 0:
        body[rng.choice(FIELDS)] = rng.choice(HOSTILE_VALUES)
        return "hostile_value", _dumps(body)
    if choice == 1:
        for field in rng.sample(FIELDS, 3):
            body[field] = rng.choice(HOSTILE_VALUES)
        return "hostile_values", _dumps(body)
    if choice == 2:
        field = rng.choice(FIELDS)
        body[field] = "__RAW__"
        return "raw_number", _dumps(body).replace(b'"__RAW__"', rng.choice(RAW_NUMBERS).encode())
    if choice == 3:
        raw = _dumps(body)
        return "truncated", raw[: rng.randrange(len(raw))]
    if choice == 4:
        flipped = bytearray(_dumps(body))
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return "byte_flips", bytes(flipped)
    if choice == 5:
        depth = rng.choice([10, 1000, 20000])
        return "deep_nesting", b"[" * depth + b"]" * depth
    return "not_an_object", _dumps(rng.choice([[body], "text", 42, None, [], body["payment_id"]]))


def _dumps(value: Any) -> bytes:
    # surrogatepass: a lone surrogate goes on the wire as its \u escape, as a JavaScript sender's.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def fuzz_cases(count: int, secret: str, seed: int = 20261123) -> Iterator[FuzzCase]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            yield FuzzCase("random_bytes", rng.randbytes(rng.randrange(0, 2048)), b"00", validly_signed=False)
            continue
        if roll < 0.08:
            yield FuzzCase("oversized", b"{" + b" " * (64 * 1024 + rng.randrange(1, 4096)) + b"}", b"00", False)
            continue
        kind, body = _mutated_body(rng)
        how = rng.random()
        if how < 0.35:
            try:
                signature = sign(body, secret).encode()
            except (ValueError, TypeError, RecursionError, OverflowError):
                signature = b"0" * 128  # a body no JSON parser takes cannot be signed
            yield FuzzCase(f"signed_{kind}", body, signature, validly_signed=True)
        elif how < 0.55:
            yield FuzzCase(f"{kind}_hostile_signature", body, rng.choice(HOSTILE_SIGNATURES), False)
        elif how < 0.65:
            yield FuzzCase(f"{kind}_no_signature", body, None, False)
        else:
            try:
                signature = sign(body, "not-the-secret").encode()
            except (ValueError, TypeError, RecursionError, OverflowError):
                signature = b"f" * 128
            yield FuzzCase(f"{kind}_wrong_secret", body, signature, False)
