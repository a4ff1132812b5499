"""The approval gate: a payout above the runtime approval limit waits for a staff decision.
Who decided and when is kept on the batch and in its history."""

import logging

from django.db import transaction
from django.utils import timezone

from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.state_machine import transition

from .client_payouts import ADVANCE_PAYOUT_TASK, PAYOUT_FLOW
from .exchange_batches.states import BatchStatus
from .locking import lock_batch
from .models import PAYOUT_MACHINE, PayoutBatch, PayoutKind

logger = logging.getLogger(__name__)


class PayoutNotAwaitingApprovalError(Exception):
    pass


def approve_payout(batch_id: int, user: object) -> PayoutBatch:
    """A staff user releases a payout above the approval limit."""
    with transaction.atomic():
        approved = transition(
            PAYOUT_MACHINE,
            batch_id,
            from_status=BatchStatus.AWAITING_APPROVAL,
            to_status=BatchStatus.APPROVED,
            actor=user,
            action="approve",
            reason=f"approved by {user}",
            updates={"approved_by": user, "approved_at": timezone.now()},
        )
        if not approved:
            raise PayoutNotAwaitingApprovalError(f"payout #{batch_id} is not awaiting approval")
        schedule_step(PayoutBatch, batch_id, ADVANCE_PAYOUT_TASK, 0)
    logger.info("payout #%s approved by %s", batch_id, user)
    return PayoutBatch.objects.get(pk=batch_id)


def reject_payout(batch_id: int, user: object) -> PayoutBatch:
    """A staff user refuses the payout: it is cancelled and its rows go back to the balance. A
    rejected instant payout has no rows to give back: it goes to review, its ETH kept for an
    operator."""
    with transaction.atomic():
        batch = lock_batch(PayoutBatch, batch_id)
        if batch.status != BatchStatus.AWAITING_APPROVAL:
            raise PayoutNotAwaitingApprovalError(f"payout #{batch_id} is not awaiting approval")
        released = PAYOUT_FLOW.release_rows(batch)
        reason = f"rejected by {user}"
        if batch.kind == PayoutKind.INSTANT:
            reason += f"; {PAYOUT_FLOW.release_note}"
        transition(
            PAYOUT_MACHINE,
            batch_id,
            from_status=BatchStatus.AWAITING_APPROVAL,
            to_status=BatchStatus.CANCELLED if batch.kind == PayoutKind.THRESHOLD else BatchStatus.FAILED,
            actor=user,
            action="reject",
            reason=reason,
            updates={"rejected_by": user, "rejected_at": timezone.now(), "review_reason": reason},
        )
    logger.info("payout #%s rejected by %s; %s rows back to the client's balance", batch_id, user, released)
    return PayoutBatch.objects.get(pk=batch_id)
