"""The approval gate: a payout above the runtime approval limit waits for a staff decision.
Who decided and when is kept on the batch and in its history.

Deciding needs the dedicated permission `payouts.approve_payout`, checked here and not only in
the admin. The approver must be a second person: nobody who appears as an actor in the payout's
own history (or of the payouts merged into it), or in the history of a payment it pays (the
operator who re-routed a held payment or accepted a partial one, whose action led to this payout)
may approve it; nor may anyone who made its wallet the client's destination (created the client
with it, or requested or confirmed the change that set it). Rejecting is open to them: it sends
nothing."""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from payments.money_controls import people_behind_destination
from payments.selectors import PAYMENT_SUBJECT, payment_ids_of_payouts
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.state_machine import actors_in_history, transition

from .client_payouts import ADVANCE_PAYOUT_TASK, PAYOUT_FLOW
from .exchange_batches.states import BatchStatus
from .locking import lock_batch
from .models import PAYOUT_MACHINE, PayoutBatch, PayoutKind
from .permissions import APPROVE_PAYOUT

logger = logging.getLogger(__name__)


class PayoutNotAwaitingApprovalError(Exception):
    pass


class ApprovalRefusedError(PermissionDenied):
    """The user may not decide this payout: no permission, or not a second person."""


def people_involved_in(batch: PayoutBatch) -> set[int]:
    """Ids of everyone who acted on this payout, on a payout merged into it, or on a payment it
    pays (its accumulation rows' payments, or an instant payout's own payment)."""
    payout_ids = [batch.pk, *PayoutBatch.objects.filter(merged_into=batch).values_list("pk", flat=True)]
    payment_ids = payment_ids_of_payouts(payout_ids) | set(
        PayoutBatch.objects.filter(pk__in=payout_ids, payment__isnull=False).values_list("payment_id", flat=True)
    )
    return actors_in_history(PAYOUT_MACHINE.subject, payout_ids) | actors_in_history(PAYMENT_SUBJECT, payment_ids)


def _require_permission(user: Any) -> None:
    if not user.has_perm(APPROVE_PAYOUT):
        raise ApprovalRefusedError(f"{user} may not approve or reject payouts (needs {APPROVE_PAYOUT})")


def approve_payout(batch_id: int, user: Any) -> PayoutBatch:
    """A staff user, a second person to everyone involved in the payout, releases a payout above
    the approval limit."""
    _require_permission(user)
    with transaction.atomic():
        batch = lock_batch(PayoutBatch, batch_id)
        if batch.status != BatchStatus.AWAITING_APPROVAL:
            raise PayoutNotAwaitingApprovalError(f"payout #{batch_id} is not awaiting approval")
        if user.pk in people_involved_in(batch):
            raise ApprovalRefusedError(
                f"{user} acted on payout #{batch_id} or on a payment it pays: a second person must approve it"
            )
        if user.pk in people_behind_destination(batch.client_id, batch.wallet_address):
            raise ApprovalRefusedError(
                f"{user} set up or changed where payout #{batch_id} goes (client {batch.client_id}'s wallet "
                f"{batch.wallet_address}): a second person must approve it"
            )
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


def reject_payout(batch_id: int, user: Any) -> PayoutBatch:
    """A staff user refuses the payout: it is cancelled and its rows go back to the balance. A
    rejected instant payout has no rows to give back: it goes to review, its ETH kept for an
    operator."""
    _require_permission(user)
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
