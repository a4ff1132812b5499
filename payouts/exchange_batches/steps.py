"""The chain every exchange-funded batch follows: one exchange (or direct transfer) per batch,
funded by one host payment from the hot wallet, followed until terminal (DESIGN.md "State
machines"; the transitions are in states.py).

Every step reads the batch's state from the database and does only what that state still needs,
so `advance` may run twice, late, or concurrently with itself.
"""

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction

from integrations.exchange.port import (
    CreatedExchange,
    ExchangeError,
    ExchangeProvider,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeState,
    ExchangeStatus,
    ExchangeUnavailable,
    Quote,
    RefusalKind,
)
from integrations.exchange.registry import exchange_provider
from integrations.exchange.routing import Route, quote_route
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step
from pgp_project.operations.state_machine import transition

from ..alerts import EXCHANGE_PAYOUT_UNSEEN, EXCHANGE_UNKNOWN_STATUS, EXCHANGE_VERIFYING
from ..host_payments.machine import ADVANCE_HOST_PAYMENT_TASK, HostPaymentMismatch, ensure_host_payment
from ..host_payments.ports import chain_adapter
from ..locking import lock_batch
from ..models import HostPaymentStatus
from .flow import B, ExchangeFundedFlow, PayoutNotSeenYet
from .quotes import abandoned_entry, mark_chosen, note_create_failure, record_quotes
from .refusals import handle_refusal
from .requote import confirm_before_sending, exchange_ref
from .states import BatchStatus
from .transitions import move, to_review

logger = logging.getLogger(__name__)


def advance(flow: ExchangeFundedFlow[B], batch_id: int) -> B:
    """Perform the next step this batch's state needs (each step is idempotent). A refusal from
    the exchange provider, at any step, is decided by kind (refusals.py)."""
    batch = flow.model._default_manager.get(pk=batch_id)
    try:
        return _advance(flow, batch)
    except ExchangeRefused as refusal:
        return handle_refusal(flow, batch_id, refusal)


def _advance(flow: ExchangeFundedFlow[B], batch: B) -> B:
    if batch.status in (BatchStatus.CREATED, BatchStatus.APPROVED) and batch.exchange_id is None:
        batch = flow.before_exchange(batch)
        if batch.status in (BatchStatus.CREATED, BatchStatus.APPROVED):
            batch = _create_exchange(flow, batch)
    if batch.status == BatchStatus.SWAP_CREATED:
        batch = _start_funding(flow, batch)
    if batch.status == BatchStatus.FUNDING:
        batch = _follow_funding(flow, batch)
    if batch.status == BatchStatus.FUNDED:
        batch = move(flow, batch, BatchStatus.EXCHANGING, reason="funding confirmed; following the exchange")
    if batch.status == BatchStatus.EXCHANGING:
        batch = _poll_exchange(flow, batch, exchange_provider(batch.exchange_provider))
    return batch


def _create_exchange(flow: ExchangeFundedFlow[B], batch: B) -> B:
    """Quote every provider that may take the batch (routing.py), record the quotes, and create
    the exchange with the best; a provider that then refuses, or cannot be reached, passes the
    batch to the next best. Nothing is sent here: only the exchange stored first is ever funded."""
    request = ExchangeRequest(
        pair=flow.pair(batch),
        from_amount=flow.send_amount(batch),
        payout_address=flow.payout_address(batch),
        payout_extra_id=flow.payout_extra_id(batch),
        refund_address=chain_adapter(flow.host_asset(batch).chain).hot_wallet_address(),
        rate_id=None,
        reference=f"{flow.kind}-{batch.pk}",
    )
    # A rate that would expire before the re-check lets it be funded ranks after lasting ones.
    route = quote_route(request.pair, request.from_amount, lasting_at_least=settings.PGP_RATE_VALIDITY_MARGIN_SECONDS)
    quote_round = record_quotes(flow.kind, batch, route)
    exchange, quote, provider = _create_with_the_best(flow, batch, route, request, quote_round)
    mismatch = _mismatch(request, exchange)
    if mismatch:
        # Never stored as the batch's exchange, so no step, however late or repeated, funds it;
        # recorded under the row lock, so an entry a concurrent run adds is never overwritten.
        _record_abandoned(flow, batch.pk, provider.name, exchange.id)
        batch.refresh_from_db()
        return to_review(
            flow,
            batch,
            BatchStatus.FAILED,
            f"{provider.name} exchange {exchange.id} does not match what we asked for ({mismatch}); nothing was "
            "sent. Cancel it in the admin to release the rows.",
        )
    if _store_exchange(flow, batch, exchange, provider.name, quote.valid_until):
        mark_chosen(flow.kind, batch.pk, quote_round, provider.name, quote)
    batch.refresh_from_db()
    return batch


def _create_with_the_best(
    flow: ExchangeFundedFlow[B], batch: B, route: Route, request: ExchangeRequest, quote_round: int
) -> tuple[CreatedExchange, Quote, ExchangeProvider]:
    """Create the exchange with the best quote that still holds, falling back down the quotes. A
    create that timed out may have made an exchange we never learn of: it is never stored, so
    never funded, and expires unfunded at the provider."""
    failures: list[ExchangeError] = []
    for rank, candidate in enumerate(route.quoted):
        provider = exchange_provider(candidate.provider)
        assert candidate.quote is not None
        runner_up = route.quoted[rank + 1].to_amount if rank + 1 < len(route.quoted) else None
        try:
            exchange, quote = _create_at_a_fresh_rate(provider, request, candidate.quote, runner_up)
        except (ExchangeRefused, ExchangeUnavailable) as error:
            logger.warning("%s #%s: %s did not create the exchange (%s)", flow.kind, batch.pk, provider.name, error)
            note_create_failure(flow.kind, batch.pk, quote_round, provider.name, str(error))
            failures.append(error)
            continue
        return exchange, quote, provider
    refusals = [error for error in failures if isinstance(error, ExchangeRefused)]
    if refusals and len(refusals) == len(failures):
        raise refusals[0]  # every provider refused: decided by its kind (refusals.py)
    raise ExchangeUnavailable(f"no provider created the exchange: {'; '.join(map(str, failures))}")


def _create_at_a_fresh_rate(
    provider: ExchangeProvider, request: ExchangeRequest, quoted: Quote, runner_up: Decimal | None
) -> tuple[CreatedExchange, Quote]:
    """Create with the quoted rate; a rate that expired in between is fetched again once, and
    used only if it still beats the next provider's quote (`runner_up`). Never retried inside the
    call otherwise: the task retries the step."""
    quote = quoted
    for attempt in (1, 2):
        try:
            return provider.create(replace(request, rate_id=quote.rate_id)), quote
        except ExchangeRefused as refusal:
            if refusal.kind != RefusalKind.RATE_EXPIRED:
                raise
            if attempt == 2:  # nothing wrong with the batch: a wait (the next provider, or the step's retry)
                raise ExchangeUnavailable(
                    f"{provider.name}'s fixed rate expired twice before the exchange was created"
                ) from refusal
            logger.warning("%s: fixed rate expired before the exchange was created; quoting again", provider.name)
            quote = provider.estimate(request.pair, request.from_amount)
            if runner_up is not None and quote.to_amount < runner_up:
                raise ExchangeUnavailable(
                    f"{provider.name}'s fixed rate expired, and its fresh quote {quote.to_amount} is below the next "
                    f"provider's {runner_up}"
                ) from refusal
    raise AssertionError("unreachable")


def _mismatch(request: ExchangeRequest, exchange: CreatedExchange) -> str:
    """What the provider's answer says differently from the request, if anything."""
    problems = []
    if exchange.pair != request.pair:
        problems.append(f"pair {exchange.pair}, asked {request.pair}")
    if exchange.payout_address.lower() != request.payout_address.lower():
        problems.append(f"payout address {exchange.payout_address!r}, asked {request.payout_address!r}")
    if exchange.payout_extra_id != request.payout_extra_id:
        problems.append(f"payout memo {exchange.payout_extra_id!r}, asked {request.payout_extra_id!r}")
    if exchange.from_amount != request.from_amount:
        problems.append(f"fromAmount {exchange.from_amount}, asked {request.from_amount}")
    return "; ".join(problems)


def _store_exchange(
    flow: ExchangeFundedFlow[B], batch: B, exchange: CreatedExchange, provider_name: str, quoted_until: datetime | None
) -> bool:
    """Only the first stored exchange is ever funded (reliability rule 4); one created by a
    concurrent or earlier ambiguous attempt is recorded as abandoned and expires unfunded. True
    if this exchange is the one stored."""
    stored = transition(
        flow.machine,
        batch.pk,
        from_status=batch.status,
        to_status=BatchStatus.SWAP_CREATED,
        reason=f"exchange {exchange.id} created with {provider_name}",
        guard={"exchange_id__isnull": True},
        updates={
            "exchange_provider": provider_name,
            "exchange_id": exchange.id,
            "payin_address": exchange.payin_address,
            "exchange_from_amount": exchange.from_amount,
            "expected_amount": exchange.to_amount,
            "exchange_valid_until": exchange.valid_until or quoted_until,
            "exchange_status": "created",
        },
    )
    if stored:
        logger.info("%s #%s: exchange %s created, payin %s", flow.kind, batch.pk, exchange.id, exchange.payin_address)
        return True
    if _record_abandoned(flow, batch.pk, provider_name, exchange.id):
        logger.warning("%s #%s: exchange %s abandoned, the stored one is funded", flow.kind, batch.pk, exchange.id)
    return False


def _record_abandoned(flow: ExchangeFundedFlow[B], batch_id: int, provider_name: str, exchange_id: str) -> bool:
    """Record an exchange that will never be funded (as "provider:id"), unless it is the batch's
    own. Under the row lock, so concurrent runs' entries all get recorded."""
    with transaction.atomic():
        locked = lock_batch(flow.model, batch_id)
        if (provider_name, exchange_id) == (locked.exchange_provider, locked.exchange_id):
            return False
        entry = abandoned_entry(provider_name, exchange_id)
        if entry not in locked.abandoned_exchange_ids:
            locked.abandoned_exchange_ids = [*locked.abandoned_exchange_ids, entry]
            locked.save(update_fields=["abandoned_exchange_ids", "updated_at"])
    return True


def _start_funding(flow: ExchangeFundedFlow[B], batch: B) -> B:
    amount = flow.send_amount(batch)
    if batch.exchange_from_amount != amount:
        # Never send an amount other than what the batch holds, and never silently.
        return to_review(
            flow,
            batch,
            BatchStatus.FAILED,
            f"exchange fromAmount {batch.exchange_from_amount} != batch amount {amount}; "
            "nothing was sent. Cancel it in the admin to release the rows.",
        )
    # An exchange only takes a deposit while it waits for one, at a rate that still holds.
    if not confirm_before_sending(flow, batch):
        batch.refresh_from_db()
        return batch
    try:
        with transaction.atomic():
            # Under the batch lock, so a concurrent cancel either sees our host payment (and
            # refuses) or has already cancelled (and we create nothing).
            locked = lock_batch(flow.model, batch.pk)
            # Only the exchange re-checked above: a re-quote may have put another in its place.
            rechecked = (locked.exchange_provider, locked.exchange_id) == (batch.exchange_provider, batch.exchange_id)
            if locked.status != BatchStatus.SWAP_CREATED or not rechecked:
                batch.refresh_from_db()
                return batch
            host_payment = ensure_host_payment(
                flow=flow, owner=locked, asset=flow.host_asset(locked), amount=amount, to_address=locked.payin_address
            )
            batch = move(flow, locked, BatchStatus.FUNDING, reason=f"host payment #{host_payment.pk} created")
            enqueue_after_commit(ADVANCE_HOST_PAYMENT_TASK, host_payment.pk)
    except HostPaymentMismatch as exc:
        return to_review(flow, batch, BatchStatus.FAILED, str(exc))
    return batch


def _follow_funding(flow: ExchangeFundedFlow[B], batch: B) -> B:
    host_payment = batch.host_payment
    if host_payment is None:  # the funding_has_host_payment constraint rules this out; be loud
        return to_review(flow, batch, BatchStatus.FAILED, "funding without a host payment")
    if host_payment.status == HostPaymentStatus.CONFIRMED:
        return move(flow, batch, BatchStatus.FUNDED, reason=f"host payment {host_payment.tx_hash} confirmed")
    if host_payment.status == HostPaymentStatus.FAILED:
        return to_review(flow, batch, BatchStatus.FAILED, f"host payment failed: {host_payment.last_error}")
    # The host payment drives itself and wakes us when it settles; this is the safety net.
    schedule_step(flow.model, batch.pk, flow.advance_task, settings.PGP_CHAIN_POLL_SECONDS * 2)
    return batch


def _poll_exchange(flow: ExchangeFundedFlow[B], batch: B, provider: ExchangeProvider) -> B:
    state = provider.status(exchange_ref(batch))
    flow.model._default_manager.filter(pk=batch.pk).update(exchange_status=state.provider_status[:20])
    if state.status in (ExchangeStatus.UNKNOWN, ExchangeStatus.VERIFYING):
        # Held by the provider's checks, or a status we do not know: neither moves on by itself.
        alert(
            EXCHANGE_VERIFYING if state.status == ExchangeStatus.VERIFYING else EXCHANGE_UNKNOWN_STATUS,
            Subject(flow.kind, batch.pk),
            kind=flow.kind,
            id=batch.pk,
            provider=provider.name,
            exchange=batch.exchange_id,
            status=repr(state.provider_status),
        )
    if state.status == ExchangeStatus.FINISHED:
        if state.amount_to is None:
            return to_review(flow, batch, BatchStatus.FAILED, f"{provider.name} finished without the amount paid out")
        return _finish_verified(flow, batch, provider, state)
    if state.status in (ExchangeStatus.FAILED, ExchangeStatus.REFUNDED):
        return _exchange_failed(flow, batch, provider, state)
    schedule_step(flow.model, batch.pk, flow.advance_task, settings.PGP_EXCHANGE_POLL_SECONDS)
    batch.refresh_from_db()
    return batch


def _finish_verified(flow: ExchangeFundedFlow[B], batch: B, provider: ExchangeProvider, state: ExchangeState) -> B:
    """Finish only on a payout the chain confirms as reported; a payout the chain contradicts
    goes to review (the funds are at the exchange or with us, nothing is distributed), one it
    does not show yet is polled again and alerted."""
    try:
        problem = flow.payout_problem(batch, state)
    except PayoutNotSeenYet as unseen:
        alert(
            EXCHANGE_PAYOUT_UNSEEN,
            Subject(flow.kind, batch.pk),
            kind=flow.kind,
            id=batch.pk,
            provider=provider.name,
            exchange=batch.exchange_id,
            unseen=unseen,
        )
        schedule_step(flow.model, batch.pk, flow.advance_task, settings.PGP_EXCHANGE_POLL_SECONDS)
        batch.refresh_from_db()
        return batch
    if problem:
        return to_review(
            flow,
            batch,
            BatchStatus.FAILED,
            f"{provider.name} exchange {batch.exchange_id} finished, but {problem}; nothing was distributed. "
            "Settle it with the exchange, then resume the batch once its report matches the chain.",
        )
    flow.finish(batch.pk, state)
    batch.refresh_from_db()
    return batch


def _exchange_failed(flow: ExchangeFundedFlow[B], batch: B, provider: ExchangeProvider, state: ExchangeState) -> B:
    status = BatchStatus.FAILED if state.status == ExchangeStatus.FAILED else BatchStatus.REFUNDED
    reason = f"{provider.name} exchange {state.provider_status}"
    if state.refund_hash:
        reason += f" (refund tx {state.refund_hash})"
    return to_review(flow, batch, status, reason)
