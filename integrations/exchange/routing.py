"""Routing across exchange providers: every enabled provider that trades a pair is asked at
once, and the best answer wins.

- `quote_route`: each candidate's quote for the amount, best net amount first (a quote's
  to_amount is what the payee receives after the provider's fees). Who refused, timed out or was
  skipped by its open circuit breaker is kept with the reason, so the batch records every quote.
- `amount_range`: the best of the candidates' ranges (the lowest minimum, the highest maximum):
  a batch any one provider takes is not held back by another's limits.
- `validate_address`: the first candidate that answers.

A provider whose breaker is open is not asked (one outage delays nothing); when no candidate
answers at all, the pair's batches wait with an alert. Providers are called from threads, which
touch no database; each call is booked on its provider's health afterwards, from the caller's
thread.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import connections
from django.utils import timezone

from integrations.assets import Asset
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.circuit_breaker import allows_call

from .alerts import EXCHANGE_NO_PROVIDER_AVAILABLE
from .metering import MeteredProvider, TimedCall, record, timed
from .port import (
    AddressCheck,
    AmountRange,
    ExchangeError,
    ExchangePair,
    ExchangeProvider,
    ExchangeRefused,
    ExchangeUnavailable,
    Quote,
    RefusalKind,
)
from .registry import candidate_providers, exchange_provider

T = TypeVar("T")
CIRCUIT_OPEN = "skipped: circuit breaker open"


@dataclass(frozen=True)
class ProviderQuote:
    provider: str
    quote: Quote | None  # None: no quote (see `problem`)
    problem: str = ""  # why there is no quote: refused, unavailable, skipped
    refused: bool = False  # the provider answered with a refusal (not down)

    @property
    def to_amount(self) -> Decimal | None:
        return self.quote.to_amount if self.quote else None


@dataclass(frozen=True)
class Route:
    pair: ExchangePair
    from_amount: Decimal
    quotes: list[ProviderQuote]  # the quoted best first, then those without a quote

    @property
    def quoted(self) -> list[ProviderQuote]:
        return [quote for quote in self.quotes if quote.quote is not None]

    def saving(self) -> tuple[Decimal, str] | None:
        """What the best quote gives over the runner-up, and who that was (None: one quote)."""
        quoted = self.quoted
        if len(quoted) < 2:
            return None
        best, runner_up = quoted[0].to_amount, quoted[1].to_amount
        assert best is not None
        assert runner_up is not None
        return best - runner_up, quoted[1].provider


def _ask_each(pair: ExchangePair, ask: Callable[[ExchangeProvider], T]) -> tuple[list[TimedCall[T]], list[str]]:
    """Ask every candidate whose breaker lets it be asked, at once; book each call. Returns the
    calls made and the candidates skipped."""
    names = candidate_providers(pair)
    if not names:
        raise ExchangeRefused(f"no enabled exchange provider trades {pair}", kind=RefusalKind.PAIR_UNAVAILABLE)
    cooldown = settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS
    asked = [name for name in names if allows_call(name, cooldown=cooldown)]
    skipped = [name for name in names if name not in asked]
    providers = [exchange_provider(name) for name in asked]
    adapters = [provider.adapter if isinstance(provider, MeteredProvider) else provider for provider in providers]
    with ThreadPoolExecutor(max_workers=max(1, len(adapters)), thread_name_prefix="exchange-route") as pool:
        futures = [
            pool.submit(_in_thread, name, lambda adapter=adapter: ask(adapter))
            for name, adapter in zip(asked, adapters, strict=True)
        ]
        calls = [future.result() for future in futures]
    for call, provider in zip(calls, providers, strict=True):
        if isinstance(provider, MeteredProvider):
            record(call)  # type: ignore[arg-type]
    if not any(call.error is None or isinstance(call.error, ExchangeRefused) for call in calls):
        _all_down(pair, calls, skipped)
    return calls, skipped


def _in_thread(provider: str, call: Callable[[], T]) -> TimedCall[T]:
    """A provider call on a pool thread. An adapter may still reach the database from there (an
    alert line is counted, say): that thread's connection is closed when it is done, never left
    open for the pool to leak."""
    try:
        return timed(provider, call)
    finally:
        connections.close_all()


def _all_down(pair: ExchangePair, calls: list[TimedCall[T]], skipped: list[str]) -> None:
    why = [f"{call.provider}: {call.error_text}" for call in calls] + [f"{name}: {CIRCUIT_OPEN}" for name in skipped]
    alert(EXCHANGE_NO_PROVIDER_AVAILABLE, Subject("exchange_pair", str(pair)), pair=str(pair), why="; ".join(why))
    retry_after = [
        call.error.retry_after
        for call in calls
        if isinstance(call.error, ExchangeUnavailable) and call.error.retry_after is not None
    ]
    raise ExchangeUnavailable(
        f"no exchange provider could answer for {pair} ({'; '.join(why)})",
        retry_after=min(retry_after) if retry_after else None,
    )


def _raise_refusal(pair: ExchangePair, refusals: list[ExchangeRefused]) -> None:
    """Every candidate that answered refused: one kind if they agree, else OTHER."""
    kinds = {refusal.kind for refusal in refusals}
    message = "; ".join(f"{refusal.provider or 'provider'}: {refusal}" for refusal in refusals)
    # Out of one provider's range (and, say, not traded by another) is decided by the range: the
    # batch may simply wait for more, with the best of the candidates' minimums.
    if RefusalKind.OUT_OF_RANGE in kinds:
        kind = RefusalKind.OUT_OF_RANGE
    else:
        kind = kinds.pop() if len(kinds) == 1 else RefusalKind.OTHER
    error = ExchangeRefused(message, kind=kind)
    error.provider = ", ".join(refusal.provider for refusal in refusals)
    raise error


def quote_route(pair: ExchangePair, from_amount: Decimal, *, lasting_at_least: float = 0.0) -> Route:
    """Every candidate's quote, best first; a fixed rate that expires within `lasting_at_least`
    seconds (it would be replaced before funding) ranks after every rate that lasts. Raises
    ExchangeUnavailable when no candidate answered (a candidate that is down might quote later:
    waiting beats refusing), and the refusal when every one that answered refused."""
    calls, skipped = _ask_each(pair, lambda provider: provider.estimate(pair, from_amount))
    quotes = [
        ProviderQuote(call.provider, call.value)
        if call.error is None
        else ProviderQuote(call.provider, None, call.error_text, refused=isinstance(call.error, ExchangeRefused))
        for call in calls
    ]
    quotes += [ProviderQuote(name, None, CIRCUIT_OPEN) for name in skipped]
    if not any(quote.quote for quote in quotes):
        waiting = [call for call in calls if not isinstance(call.error, ExchangeRefused)]
        if waiting or skipped:
            raise ExchangeUnavailable(
                f"no quote for {pair} yet: " + "; ".join(f"{quote.provider}: {quote.problem}" for quote in quotes)
            )
        _raise_refusal(pair, [call.error for call in calls if isinstance(call.error, ExchangeRefused)])
    lasts_until = timezone.now() + timedelta(seconds=lasting_at_least)

    def too_short(quote: ProviderQuote) -> bool:
        valid_until = quote.quote.valid_until if quote.quote else None
        return valid_until is not None and valid_until < lasts_until

    quotes.sort(key=lambda quote: (quote.quote is None, too_short(quote), -(quote.to_amount or Decimal(0))))
    return Route(pair, from_amount, quotes)


def amount_range(pair: ExchangePair) -> AmountRange:
    """The best of the candidates' ranges: the lowest minimum and the highest maximum (none when
    any candidate sets none). A provider that cannot be asked now is left out."""
    calls, _ = _ask_each(pair, lambda provider: provider.amount_range(pair))
    ranges = [call.value for call in calls if call.error is None and call.value is not None]
    if not ranges:
        _raise_refusal(pair, [call.error for call in calls if isinstance(call.error, ExchangeRefused)])
    maxima = [limits.maximum for limits in ranges]
    return AmountRange(
        minimum=min(limits.minimum for limits in ranges),
        maximum=None if None in maxima else max(m for m in maxima if m is not None),
    )


def minimum(pair: ExchangePair) -> Decimal:
    return amount_range(pair).minimum


def best_quote(pair: ExchangePair, from_amount: Decimal) -> ProviderQuote:
    return quote_route(pair, from_amount).quoted[0]


def validate_address(pair: ExchangePair, address: str) -> tuple[AddressCheck, str]:
    """Whether the pair's payee can be paid at `address`, by the first candidate that can check
    it and answers (in settings order), and who said so. Providers that are down, or that cannot
    check this asset's addresses, are passed over; when none can check it the answer is
    `checked=False` (never a yes), and when none answers the wait is raised."""
    receiving: Asset = pair.target
    cooldown = settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS
    failures: list[str] = []
    cannot: list[str] = []
    for name in candidate_providers(pair):
        provider = exchange_provider(name)
        # A check made without calling the provider needs no breaker's leave (nor claims its probe).
        local = getattr(provider, "checks_addresses_locally", False)
        if not local and not allows_call(name, cooldown=cooldown):
            failures.append(f"{name}: {CIRCUIT_OPEN}")
            continue
        try:
            check = provider.validate_address(receiving, address)
        except ExchangeRefused:
            raise
        except ExchangeError as error:
            failures.append(f"{name}: {error}")
            continue
        if check.checked:
            return check, name
        cannot.append(name)
    if failures:
        raise ExchangeUnavailable(f"no exchange provider could check the address for {pair}: " + "; ".join(failures))
    return AddressCheck(valid=False, message=f"none of {', '.join(cannot)} can check it", checked=False), ""


__all__ = ["ProviderQuote", "Route", "amount_range", "best_quote", "minimum", "quote_route", "validate_address"]
