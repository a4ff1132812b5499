"""Moving an exchange-funded batch between states: the next step, or to review with an alert."""

from django.utils import timezone

from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.state_machine import SYSTEM, transition

from ..alerts import BATCH_REVIEW, BATCH_REVIEW_REFUSED
from .flow import B, ExchangeFundedFlow
from .states import CLOSED_STATUSES, BatchStatus


def move(
    flow: ExchangeFundedFlow[B],
    batch: B,
    to_status: BatchStatus,
    *,
    reason: str = "",
    updates: dict[str, object] | None = None,
) -> B:
    """Compare-and-set from the status this run read; whatever the outcome, return the batch as
    the database has it."""
    transition(flow.machine, batch.pk, from_status=batch.status, to_status=to_status, reason=reason, updates=updates)
    batch.refresh_from_db()
    return batch


def to_review(
    flow: ExchangeFundedFlow[B],
    batch: B,
    status: BatchStatus,
    reason: str,
    *,
    actor: object = SYSTEM,
    updates: dict[str, object] | None = None,
) -> B:
    """Hold the batch and its rows as they are for an operator, and alert (funds may have moved).
    A compare-and-set on the status this run read: a stale run cannot fail a batch that has
    moved on meanwhile, and a closed batch stays closed."""
    if not flow.machine.allows(batch.status, status) and batch.status not in CLOSED_STATUSES:
        # A bug, not bad luck: a step asked for a move the table forbids. Keep the batch as it
        # is, and make sure a person hears of it.
        alert(
            BATCH_REVIEW_REFUSED,
            Subject(flow.kind, batch.pk),
            kind=flow.kind,
            id=batch.pk,
            state=batch.status,
            wanted=status,
            reason=reason,
        )
    changed = flow.machine.allows(batch.status, status) and transition(
        flow.machine,
        batch.pk,
        from_status=batch.status,
        to_status=status,
        actor=actor,
        reason=reason,
        updates={**(updates or {}), "review_reason": reason[:2000], "next_action_at": None},
    )
    batch.refresh_from_db()
    if changed:
        alert(
            BATCH_REVIEW,
            Subject(flow.kind, batch.pk),
            kind=flow.kind,
            id=batch.pk,
            status=status,
            age=f"{int((timezone.now() - batch.created_at).total_seconds())}s",
            reason=reason,
        )
    return batch
