"""The quotes a batch was routed by (ExchangeQuote rows), and the exchanges it abandoned, each
named with its provider: a re-quote may move a batch to another provider, so an exchange id
alone no longer says where it lives."""

from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max

from integrations.exchange.port import Quote
from integrations.exchange.routing import Route

from ..models import ExchangeFundedBatch, ExchangeQuote

PROVIDER_SEPARATOR = ":"


def abandoned_entry(provider: str, exchange_id: str) -> str:
    """How an abandoned exchange is recorded: "provider:id"."""
    return f"{provider}{PROVIDER_SEPARATOR}{exchange_id}"


def record_quotes(kind: str, batch: ExchangeFundedBatch, route: Route) -> int:
    """Store every quote of this round (the next round number); returns the round."""
    for _ in range(3):  # a concurrent run of the same step may take the same round: take the next
        latest = ExchangeQuote.objects.filter(batch_kind=kind, batch_id=batch.pk).aggregate(n=Max("round"))["n"]
        quote_round = (latest or 0) + 1
        try:
            with transaction.atomic():
                ExchangeQuote.objects.bulk_create(
                    ExchangeQuote(
                        batch_kind=kind,
                        batch_id=batch.pk,
                        round=quote_round,
                        provider=quote.provider,
                        pair=str(route.pair),
                        from_amount=route.from_amount,
                        to_amount=quote.to_amount,
                        rate_id=(quote.quote.rate_id or "") if quote.quote else "",
                        valid_until=quote.quote.valid_until if quote.quote else None,
                        problem=quote.problem[:2000],
                    )
                    for quote in route.quotes
                )
        except IntegrityError:
            continue
        return quote_round
    raise RuntimeError(f"{kind} #{batch.pk}: could not record its quotes")


def note_create_failure(kind: str, batch_id: int, quote_round: int, provider: str, error: str) -> None:
    ExchangeQuote.objects.filter(batch_kind=kind, batch_id=batch_id, round=quote_round, provider=provider).update(
        problem=f"creating the exchange failed: {error}"[:2000]
    )


def mark_chosen(kind: str, batch_id: int, quote_round: int, provider: str, used: Quote) -> None:
    """The batch's exchange was created with this provider, at the quote `used` (a fresh one when
    the first expired before the exchange was made: the row keeps what was really used)."""
    ExchangeQuote.objects.filter(batch_kind=kind, batch_id=batch_id, round=quote_round, provider=provider).update(
        chosen=True, to_amount=used.to_amount, rate_id=used.rate_id or "", valid_until=used.valid_until
    )


@dataclass(frozen=True)
class RoutingSaving:
    """What the chosen quote gave over the best other quote of its round."""

    chosen: ExchangeQuote
    runner_up: ExchangeQuote | None

    @property
    def amount(self) -> Decimal | None:
        if self.runner_up is None or self.chosen.to_amount is None or self.runner_up.to_amount is None:
            return None
        return self.chosen.to_amount - self.runner_up.to_amount

    @property
    def basis_points(self) -> Decimal | None:
        amount = self.amount
        if amount is None or not self.runner_up or not self.runner_up.to_amount:
            return None
        return (amount / self.runner_up.to_amount * 10_000).quantize(Decimal("0.01"))


def quotes_of(kind: str, batch_id: int) -> list[ExchangeQuote]:
    return list(ExchangeQuote.objects.filter(batch_kind=kind, batch_id=batch_id).order_by("round", "-to_amount"))


def routing_saving(quotes: list[ExchangeQuote]) -> RoutingSaving | None:
    """The saving of the round the batch's exchange was chosen in (None: none chosen yet)."""
    chosen = next((quote for quote in reversed(quotes) if quote.chosen), None)
    if chosen is None:
        return None
    others = [
        quote
        for quote in quotes
        if quote.round == chosen.round and quote.pk != chosen.pk and quote.to_amount is not None
    ]
    runner_up = max(others, key=lambda quote: quote.to_amount or Decimal(0), default=None)
    return RoutingSaving(chosen, runner_up)
