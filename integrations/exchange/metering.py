"""Every call to an exchange provider, timed and counted by outcome, and fed to its circuit
breaker (pgp_project.operations.circuit_breaker): /metrics exports the counts, routing skips a
provider whose breaker is open, and an alert says when a breaker opens.

`timed` makes the call and measures it without touching the database (routing calls providers
from threads); `record` books it, from the caller's own thread.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

from django.conf import settings

from integrations.assets import Asset
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.circuit_breaker import CallOutcome, record_call

from .alerts import EXCHANGE_PROVIDER_CIRCUIT_OPEN
from .port import (
    AddressCheck,
    AmountRange,
    CreatedExchange,
    ExchangeError,
    ExchangePair,
    ExchangeProvider,
    ExchangeRef,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeState,
    ExchangeUnavailable,
    Quote,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TimedCall(Generic[T]):
    provider: str
    outcome: CallOutcome
    seconds: float
    value: T | None = None
    error: Exception | None = None

    @property
    def error_text(self) -> str:
        """The failure as it may be kept (quote rows, the health row, alerts): an ExchangeError's
        message, which never holds a credential; of anything else only its type, since its message
        may quote what was sent (requests' InvalidHeader quotes the API key's header)."""
        if self.error is None or isinstance(self.error, ExchangeError):
            return str(self.error or "")
        return f"{self.provider}: unexpected {type(self.error).__name__}"

    def result(self) -> T:
        """The value, or the call's exception raised again."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


def outcome_of(error: Exception | None) -> CallOutcome:
    if error is None:
        return CallOutcome.OK
    if isinstance(error, ExchangeRefused):
        return CallOutcome.REFUSED
    if isinstance(error, ExchangeUnavailable):
        return CallOutcome.UNAVAILABLE
    return CallOutcome.BAD_RESPONSE  # ExchangeBadResponse, or anything the adapter did not expect


def timed(provider: str, call: Callable[[], T]) -> TimedCall[T]:
    """Make the call; never raises (the exception is kept in the result). No database access."""
    started = time.monotonic()
    try:
        value = call()
    except Exception as error:  # noqa: BLE001 - kept and raised again by result()
        if isinstance(error, ExchangeError):
            error.provider = provider
        return TimedCall(provider, outcome_of(error), time.monotonic() - started, error=error)
    return TimedCall(provider, CallOutcome.OK, time.monotonic() - started, value=value)


def record(call: TimedCall[object]) -> None:
    """Book the call on its provider's health; alert when its failure opened the breaker."""
    booked = record_call(
        call.provider,
        call.outcome,
        call.seconds,
        threshold=settings.PGP_EXCHANGE_BREAKER_FAILURES,
        error=call.error_text,
    )
    if booked.opened:
        alert(
            EXCHANGE_PROVIDER_CIRCUIT_OPEN,
            Subject("exchange_provider", call.provider),
            provider=call.provider,
            failures=settings.PGP_EXCHANGE_BREAKER_FAILURES,
            cooldown=settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS,
            last=(call.error_text or "-")[:200],
        )


class MeteredProvider:
    """A provider whose every call is timed, counted and fed to its breaker."""

    def __init__(self, adapter: ExchangeProvider) -> None:
        self.adapter = adapter
        self.name = adapter.name
        self.checks_addresses_locally: bool = getattr(adapter, "checks_addresses_locally", False)

    def _call(self, call: Callable[[], T]) -> T:
        made = timed(self.name, call)
        record(made)  # type: ignore[arg-type]
        return made.result()

    def supports(self, pair: ExchangePair) -> bool:
        return self.adapter.supports(pair)

    def minimum(self, pair: ExchangePair) -> Decimal:
        return self._call(lambda: self.adapter.minimum(pair))

    def amount_range(self, pair: ExchangePair) -> AmountRange:
        return self._call(lambda: self.adapter.amount_range(pair))

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote:
        return self._call(lambda: self.adapter.estimate(pair, from_amount))

    def create(self, request: ExchangeRequest) -> CreatedExchange:
        return self._call(lambda: self.adapter.create(request))

    def status(self, exchange: ExchangeRef) -> ExchangeState:
        return self._call(lambda: self.adapter.status(exchange))

    def validate_address(self, receiving: Asset, address: str) -> AddressCheck:
        if self.checks_addresses_locally:  # no call to the provider: nothing to book on its health
            return self.adapter.validate_address(receiving, address)
        return self._call(lambda: self.adapter.validate_address(receiving, address))

    def __repr__(self) -> str:
        return f"<metered {self.adapter!r}>"
