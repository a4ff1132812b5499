"""Faults a test can switch on through `POST /sandbox/faults`, consumed as requests arrive.

Count-based faults (`http_429`, `http_500`, `slow`, `refuse`) hit the next `count` API requests,
optionally only those to one `path`, after letting the first `after` of them through (0 by
default: a provider that fails from its second quote on, say); `refuse` answers 400 with ChangeNOW's error shape and the
`error` code given (`out_of_range`, say). One-shot faults apply to the next exchange created
(`next_outcome`: finished, failed, refunded, or verifying, where it then stays for good;
`from_amount_skew`; `answer_payout_address`: the creation answer names this payout address,
though the exchange pays the one asked for) or the next fixed-rate quote
(`next_quote_ttl_seconds`: how long its rate and the exchange made from it stay valid; 0 means
expired at once) and are then gone. `reported_amount_to_skew` is one-shot too: the next exchange
created pays out what it should, but by-id reports an `amountTo` this much larger, a provider
whose report disagrees with the chain; so is `reported_payout_hash`: by-id names this payoutHash
(a transaction the chain does not have) instead of the payout it sent.

`max_amount_usd` is a setting rather than a fault: the pairs' maximum (`maxAmount` of
/v2/exchange/range, and the limit estimates and creations are checked against), in USD worth of
the asset sent, until a reset.
"""

import threading
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

OUTCOMES = ("finished", "failed", "refunded", "verifying")
_COUNTED_KINDS = ("http_429", "http_500", "slow", "refuse")
_ONE_SHOT_KINDS = (
    "next_outcome",
    "from_amount_skew",
    "next_quote_ttl_seconds",
    "answer_payout_address",
    "reported_amount_to_skew",
    "reported_payout_hash",
)
_SETTINGS = ("max_amount_usd",)
_DECIMAL_KINDS = ("from_amount_skew", "reported_amount_to_skew", "max_amount_usd")


class FaultSpecError(ValueError):
    """A fault request the sandbox does not understand."""


@dataclass
class CountedFault:
    remaining: int
    path: str | None = None
    retry_after: int = 1  # http_429: seconds, sent as the Retry-After header
    seconds: Decimal = Decimal(0)  # slow: delay before the request is handled
    error: str = "not_valid_params"  # refuse: the error code of the 400 answer

    after: int = 0  # matching requests still let through before the fault hits

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (self.path is None or self.path == path)

    def take(self, path: str) -> bool:
        """Whether this request is hit (one count used), or let through (one `after` used)."""
        if not self.matches(path):
            return False
        if self.after > 0:
            self.after -= 1
            return False
        self.remaining -= 1
        return True


@dataclass(frozen=True)
class InjectedError:
    status: int
    retry_after: int | None = None
    error: str = ""


class Faults:
    """The active faults; every method is safe to call from any request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counted: dict[str, CountedFault] = {}
        self._next_outcome: str | None = None
        self._from_amount_skew: Decimal | None = None
        self._next_quote_ttl: int | None = None
        self._answer_payout_address: str | None = None
        self._reported_amount_to_skew: Decimal | None = None
        self._reported_payout_hash: str | None = None
        self._max_amount_usd: Decimal | None = None

    def configure(self, spec: Any) -> None:
        """Merge `spec` into the active faults; a kind named again replaces its previous setting."""
        if not isinstance(spec, dict) or not spec:
            raise FaultSpecError("expected a JSON object naming at least one fault")
        parsed_counted = {kind: _parse_counted(kind, spec[kind]) for kind in _COUNTED_KINDS if kind in spec}
        outcome = spec.get("next_outcome")
        if "next_outcome" in spec and outcome not in OUTCOMES:
            raise FaultSpecError(f"next_outcome must be one of {', '.join(OUTCOMES)}")
        amounts = {name: _parse_decimal(name, spec[name]) for name in _DECIMAL_KINDS if name in spec}
        ttl = spec.get("next_quote_ttl_seconds")
        if "next_quote_ttl_seconds" in spec and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
            raise FaultSpecError("next_quote_ttl_seconds must be a non-negative integer")
        unknown = set(spec) - set(_COUNTED_KINDS) - set(_ONE_SHOT_KINDS) - set(_SETTINGS)
        if unknown:
            raise FaultSpecError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._counted.update(parsed_counted)
            if "next_outcome" in spec:
                self._next_outcome = outcome
            self._from_amount_skew = amounts.get("from_amount_skew", self._from_amount_skew)
            if "next_quote_ttl_seconds" in spec:
                self._next_quote_ttl = ttl
            if "answer_payout_address" in spec:
                self._answer_payout_address = str(spec["answer_payout_address"])
            if "reported_payout_hash" in spec:
                self._reported_payout_hash = str(spec["reported_payout_hash"])
            self._reported_amount_to_skew = amounts.get("reported_amount_to_skew", self._reported_amount_to_skew)
            self._max_amount_usd = amounts.get("max_amount_usd", self._max_amount_usd)

    def reset(self) -> None:
        with self._lock:
            self._counted.clear()
            self._next_outcome = None
            self._from_amount_skew = None
            self._next_quote_ttl = None
            self._answer_payout_address = None
            self._reported_amount_to_skew = None
            self._reported_payout_hash = None
            self._max_amount_usd = None

    def take_delay(self, path: str) -> Decimal:
        """Seconds to stall this request (0 when no `slow` fault applies); uses one count."""
        with self._lock:
            fault = self._counted.get("slow")
            if fault is None or not fault.take(path):
                return Decimal(0)
            return fault.seconds

    def take_error(self, path: str) -> InjectedError | None:
        """The error to answer this request with instead of handling it, if any; uses one count."""
        with self._lock:
            for kind, status in (("http_429", 429), ("http_500", 500), ("refuse", 400)):
                fault = self._counted.get(kind)
                if fault is not None and fault.take(path):
                    return InjectedError(status, fault.retry_after if status == 429 else None, fault.error)
        return None

    def take_next_outcome(self) -> str:
        with self._lock:
            outcome, self._next_outcome = self._next_outcome, None
        return outcome or "finished"

    def take_from_amount_skew(self) -> Decimal:
        with self._lock:
            skew, self._from_amount_skew = self._from_amount_skew, None
        return skew or Decimal(0)

    def take_answer_payout_address(self) -> str | None:
        with self._lock:
            address, self._answer_payout_address = self._answer_payout_address, None
        return address

    def take_reported_amount_to_skew(self) -> Decimal:
        with self._lock:
            skew, self._reported_amount_to_skew = self._reported_amount_to_skew, None
        return skew or Decimal(0)

    def take_reported_payout_hash(self) -> str | None:
        with self._lock:
            tx_hash, self._reported_payout_hash = self._reported_payout_hash, None
        return tx_hash

    def max_amount_usd(self) -> Decimal | None:
        """The maximum set by a test, if any (not used up: it holds until a reset)."""
        with self._lock:
            return self._max_amount_usd

    def take_quote_ttl(self, default: int) -> int:
        with self._lock:
            ttl, self._next_quote_ttl = self._next_quote_ttl, None
        return default if ttl is None else ttl

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                **{kind: asdict(fault) for kind, fault in self._counted.items() if fault.remaining > 0},
                "next_outcome": self._next_outcome,
                "from_amount_skew": self._from_amount_skew,
                "next_quote_ttl_seconds": self._next_quote_ttl,
                "answer_payout_address": self._answer_payout_address,
                "reported_amount_to_skew": self._reported_amount_to_skew,
                "reported_payout_hash": self._reported_payout_hash,
                "max_amount_usd": self._max_amount_usd,
            }


def _parse_counted(kind: str, raw: Any) -> CountedFault:
    if not isinstance(raw, dict):
        raise FaultSpecError(f"{kind} must be an object such as {{'count': 3}}")
    count = raw.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise FaultSpecError(f"{kind}.count must be a non-negative integer")
    path = raw.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise FaultSpecError(f"{kind}.path must be a path such as /v2/exchange")
    after = raw.get("after", 0)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise FaultSpecError(f"{kind}.after must be a non-negative integer")
    fault = CountedFault(remaining=count, path=path, after=after)
    if kind == "http_429":
        retry_after = raw.get("retry_after", 1)
        if not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0:
            raise FaultSpecError("http_429.retry_after must be a non-negative integer (seconds)")
        fault.retry_after = retry_after
    if kind == "slow":
        fault.seconds = _parse_decimal("slow.seconds", raw.get("seconds", 1))
    if kind == "refuse":
        error = raw.get("error", "not_valid_params")
        if not isinstance(error, str) or not error:
            raise FaultSpecError("refuse.error must be the provider's error code (or message) such as out_of_range")
        fault.error = error
    return fault


def _parse_decimal(name: str, raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal):
        raise FaultSpecError(f"{name} must be a number")
    try:
        value = Decimal(raw)
    except InvalidOperation as error:
        raise FaultSpecError(f"{name} must be a number") from error
    if not value.is_finite() or value < 0:
        raise FaultSpecError(f"{name} must be a non-negative number")
    return value
