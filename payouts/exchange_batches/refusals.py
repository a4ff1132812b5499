"""An exchange provider refused a request (an estimate, an exchange, an address check, a lookup
by id): decided by kind, and recorded on the batch (last_error, attempts) whatever the kind.

- Below the minimum, before anything was sent: a batch that can give its rows back does, and
  they wait for more (the checks do not claim below the minimum); an instant payout waits in
  waiting_minimum until the client's later instant payouts lift it over (see merging.py).
- Over the maximum: to review, the reason saying so (conversions are capped at the maximum when
  claimed, so this is a payout, or a maximum that fell since the claim).
- Anything else goes to review with an alert.

An expired fixed rate never gets here: creating the exchange fetches a fresh one (steps.py).
"""

from django.db.models import F

from integrations.exchange import routing
from integrations.exchange.port import AmountRange, ExchangeError, ExchangeRefused, RefusalKind

from .flow import B, ExchangeFundedFlow
from .operator import cancel_unfunded
from .states import BatchStatus
from .transitions import move, to_review

BEFORE_ANY_EXCHANGE = (BatchStatus.CREATED, BatchStatus.APPROVED)
NOTHING_SENT = (*BEFORE_ANY_EXCHANGE, BatchStatus.SWAP_CREATED)


def _range_now(flow: ExchangeFundedFlow[B], batch: B) -> AmountRange | None:
    """`out_of_range` (or `deposit_too_small`) means below the minimum or above the maximum, or
    a range that moved: the best of the providers' ranges right now says which (None: none can
    be asked)."""
    try:
        return routing.amount_range(flow.pair(batch))
    except ExchangeError:
        return None


def handle_refusal(flow: ExchangeFundedFlow[B], batch_id: int, error: ExchangeRefused) -> B:
    note = f"{error.provider or 'the exchange'} refused ({error.kind}): {error}"
    flow.model._default_manager.filter(pk=batch_id).update(last_error=note[:2000], attempts=F("attempts") + 1)
    batch = flow.model._default_manager.get(pk=batch_id)
    limits = _range_now(flow, batch) if error.kind == RefusalKind.OUT_OF_RANGE else None
    amount = flow.send_amount(batch)
    # Only a batch below the provider's minimum right now may wait (or give its rows back to
    # wait); anything else is a person's decision, or the checks would claim and release it
    # again and again.
    if limits is not None and batch.status in BEFORE_ANY_EXCHANGE and amount < limits.minimum:
        reason = f"below the exchange minimum ({error}); nothing was sent"
        if flow.waits_below_minimum(batch):
            return move(flow, batch, BatchStatus.WAITING_MINIMUM, reason=reason, updates={"review_reason": reason})
        return cancel_unfunded(flow, batch.pk, reason=f"{reason}; its rows wait for more")
    if limits is not None and limits.maximum is not None and amount > limits.maximum:
        note += f"; {amount.normalize():f} is over the providers' highest maximum {limits.maximum} for one exchange"
    if batch.status in NOTHING_SENT:
        note += "; nothing was sent. Fix the cause, then cancel to release the rows or re-drive."
    return to_review(flow, batch, BatchStatus.FAILED, note)
