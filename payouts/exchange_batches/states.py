"""The state machine shared by every exchange-funded batch: micro-batch conversions
(batch_conversions) and client payouts (payout_batches).

created -> (awaiting_approval -> approved) -> swap_created -> funding -> funded -> exchanging
-> completed; side exits cancelled (no funds moved, rows released), failed and refunded (funds
may have moved: held for review, never released automatically). A failed batch from which
nothing was sent may still be cancelled; one whose host payment confirmed may be resumed.

Before anything is sent, a batch whose exchange stopped waiting for the deposit (or whose
fixed rate is about to expire) goes back to created (approved) for a fresh exchange. An instant
payout below the exchange's minimum waits (waiting_minimum) until the client's later instant
payouts lift their sum over it; they are then merged into one payout.
"""

from django.db import models


class BatchStatus(models.TextChoices):
    CREATED = "created", "created"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    APPROVED = "approved", "approved"
    SWAP_CREATED = "swap_created", "exchange created"
    FUNDING = "funding", "funding (host payment sent)"
    FUNDED = "funded", "funded (confirmed on chain)"
    EXCHANGING = "exchanging", "exchanging"
    COMPLETED = "completed", "completed"
    CANCELLED = "cancelled", "cancelled"
    FAILED = "failed", "failed (review)"
    REFUNDED = "refunded", "refunded (review)"
    WAITING_MINIMUM = "waiting_minimum", "waiting (below the exchange minimum)"
    MERGED = "merged", "merged into a larger payout"


S = BatchStatus
# Every allowed move, and nothing else: the one table `transition()` checks.
BATCH_TRANSITIONS: dict[str, frozenset[str]] = {
    # CREATED -> AWAITING_APPROVAL: an instant payout measured, before anything is sent, above the limit.
    S.CREATED: frozenset({S.SWAP_CREATED, S.CANCELLED, S.FAILED, S.WAITING_MINIMUM, S.AWAITING_APPROVAL}),
    S.AWAITING_APPROVAL: frozenset({S.APPROVED, S.CANCELLED, S.FAILED}),
    S.APPROVED: frozenset({S.SWAP_CREATED, S.CANCELLED, S.FAILED, S.WAITING_MINIMUM}),
    # Back to created (approved) for a fresh exchange: nothing was sent to this one.
    S.SWAP_CREATED: frozenset({S.FUNDING, S.CANCELLED, S.FAILED, S.CREATED, S.APPROVED}),
    S.FUNDING: frozenset({S.FUNDED, S.CANCELLED, S.FAILED, S.CREATED, S.APPROVED}),
    S.FUNDED: frozenset({S.EXCHANGING, S.FAILED}),
    S.EXCHANGING: frozenset({S.COMPLETED, S.FAILED, S.REFUNDED}),
    S.WAITING_MINIMUM: frozenset({S.MERGED, S.FAILED}),
    # Review: cancel if nothing was sent, or resume following the exchange if funding confirmed.
    S.FAILED: frozenset({S.CANCELLED, S.EXCHANGING}),
    # A refund that is back on chain: the rows can go to the next batch.
    S.REFUNDED: frozenset({S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    # Its merged payout was cancelled before sending: back to waiting; or its payment refunded.
    S.MERGED: frozenset({S.WAITING_MINIMUM, S.FAILED}),
}

# States in which an exchange id must already be stored.
STATUSES_WITH_EXCHANGE = [S.SWAP_CREATED, S.FUNDING, S.FUNDED, S.EXCHANGING, S.COMPLETED]
# States in which the chain still has a next step to take by itself (recovery re-drives these).
OPEN_STATUSES = [S.CREATED, S.APPROVED, S.SWAP_CREATED, S.FUNDING, S.FUNDED, S.EXCHANGING]
# States from which nothing can have been sent once the host payment is known to be unsigned.
CANCELLABLE_STATUSES = [S.CREATED, S.AWAITING_APPROVAL, S.APPROVED, S.SWAP_CREATED, S.FUNDING, S.FAILED]
# States an operator must look at.
REVIEW_STATUSES = [S.FAILED, S.REFUNDED]
CLOSED_STATUSES = [S.COMPLETED, S.CANCELLED, S.FAILED, S.REFUNDED, S.MERGED]
# States whose deadline the recovery sweep enforces: everything still under way by itself.
DEADLINE_STATUSES = [*OPEN_STATUSES, S.WAITING_MINIMUM]
