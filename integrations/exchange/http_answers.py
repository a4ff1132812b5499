"""What every HTTP exchange adapter does alike with an answer: read its JSON object (amounts as
Decimal), honour its Retry-After, and space its own retries."""

import json
import random
from decimal import Decimal
from typing import Any

import requests

from .port import ExchangeBadResponse


def json_object(response: requests.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object, numbers read as Decimal (never float); anything else is a bad
    response."""
    try:
        body = json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise ExchangeBadResponse(f"{what}: body is not JSON") from exc
    if not isinstance(body, dict):
        raise ExchangeBadResponse(f"{what}: body is not a JSON object")
    return body


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After in seconds, when the answer gives it as a number."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


def full_jitter(base: float, attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, ...): full jitter spreads the retries of many
    workers instead of synchronising them."""
    return random.uniform(0, base * 2 ** (attempt - 1))  # noqa: S311 - not crypto
