"""What an operator (or the deadline) may do to an exchange-funded batch: cancel it when nothing
can have been sent, resume one whose funding did confirm, or re-drive its next step. Each is safe
to do twice and leaves an audit event."""

import logging

from django.db import transaction

from integrations.exchange.port import ExchangeError
from integrations.exchange.registry import exchange_provider
from pgp_project.operations.permissions import require_permission
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step
from pgp_project.operations.state_machine import SYSTEM, record_action, transition
from pgp_project.operations.transient import TransientError

from ..host_payments.ports import chain_adapter
from ..locking import lock_batch_and_host_payment
from ..models import HOST_PAYMENT_MACHINE, HostPayment, HostPaymentStatus
from ..permissions import OPERATE_BATCH
from .flow import B, ExchangeFundedFlow
from .requote import exchange_ref
from .states import CANCELLABLE_STATUSES, OPEN_STATUSES, BatchStatus
from .transitions import to_review

logger = logging.getLogger(__name__)


def cancel_unfunded(
    flow: ExchangeFundedFlow[B],
    batch_id: int,
    *,
    reason: str,
    actor: object = SYSTEM,
    only_from_status: str | None = None,
) -> B:
    """Cancel a batch whose host payment never left (none, or never signed) and release its
    rows. Refused (the batch is returned unchanged) for anything that may have moved funds."""
    require_permission(actor, OPERATE_BATCH)
    with transaction.atomic():
        # The batch, then its host payment: signing holds both, so the payment is either signed
        # before we look (and we refuse) or never signed.
        batch, host_payment = lock_batch_and_host_payment(flow.model, batch_id)
        may_have_sent = host_payment is not None and host_payment.status != HostPaymentStatus.CREATED
        if only_from_status is not None and (batch.status != only_from_status or batch.exchange_id is not None):
            return batch
        if may_have_sent or batch.status not in CANCELLABLE_STATUSES:
            return batch
        if not flow.can_release(batch):
            # Nothing to release (an instant payout): to review, without an unsigned payment
            # that would otherwise linger, overdue, for ever.
            reviewed = to_review(
                flow,
                batch,
                BatchStatus.FAILED,
                f"{reason}; nothing was sent. {flow.release_note}",
                actor=actor,
                updates={"host_payment": None},
            )
            if host_payment is not None and reviewed.host_payment_id is None:
                _discard_unsigned(host_payment, actor=actor, reason=f"never signed; {flow.kind} #{batch.pk} in review")
            return reviewed
        released = flow.release_rows(batch)
        transition(
            flow.machine,
            batch.pk,
            from_status=batch.status,
            to_status=BatchStatus.CANCELLED,
            actor=actor,
            reason=reason,
            action="cancel",
            updates={"review_reason": reason[:2000], "next_action_at": None, "host_payment": None},
        )
        if host_payment is not None:
            _discard_unsigned(host_payment, actor=actor, reason=f"never signed; {flow.kind} #{batch.pk} cancelled")
        batch.refresh_from_db()
    logger.warning("%s #%s cancelled, %s rows released: %s", flow.kind, batch.pk, released, reason)
    return batch


def _discard_unsigned(host_payment: HostPayment, *, actor: object, reason: str) -> None:
    """An unsigned host payment has no transaction anywhere: it is deleted, and its history says so."""
    record_action(
        HOST_PAYMENT_MACHINE.subject,
        host_payment.pk,
        action="discarded",
        status=host_payment.status,
        actor=actor,
        reason=reason,
    )
    host_payment.delete()


def resume_funded(flow: ExchangeFundedFlow[B], batch_id: int, *, note: str, actor: object = SYSTEM) -> B:
    """A batch sent to review although its host payment did confirm (for example it passed its
    deadline while funding) goes back to following its exchange, so it can still finish.
    Refused unless the payment is confirmed and an exchange exists."""
    require_permission(actor, OPERATE_BATCH)
    with transaction.atomic():
        batch, host_payment = lock_batch_and_host_payment(flow.model, batch_id)
        if (
            batch.status != BatchStatus.FAILED
            or batch.exchange_id is None
            or host_payment is None
            or host_payment.status != HostPaymentStatus.CONFIRMED
        ):
            return batch
        transition(
            flow.machine,
            batch.pk,
            from_status=BatchStatus.FAILED,
            to_status=BatchStatus.EXCHANGING,
            actor=actor,
            action="resume",
            reason=f"resumed ({note}) after: {batch.review_reason}",
            updates={"review_reason": "", "next_action_at": None},
        )
        schedule_step(flow.model, batch.pk, flow.advance_task, 0)
        batch.refresh_from_db()
    logger.warning("%s #%s resumed: following exchange %s again (%s)", flow.kind, batch.pk, batch.exchange_id, note)
    return batch


def redrive(flow: ExchangeFundedFlow[B], batch_ids: list[int], *, actor: object) -> list[int]:
    """Run the next step of each open batch now. The step itself is idempotent, so a second
    click only repeats a harmless check; each re-drive is kept in the batch's history."""
    require_permission(actor, OPERATE_BATCH)
    rows = flow.model._default_manager.filter(pk__in=batch_ids, status__in=OPEN_STATUSES)
    redriven = []
    for batch_id, status in rows.values_list("id", "status"):
        record_action(flow.kind, batch_id, action="redrive", status=status, actor=actor)
        enqueue_after_commit(flow.advance_task, batch_id)
        redriven.append(batch_id)
    return redriven


def release_unsent(flow: ExchangeFundedFlow[B], batch_id: int, *, actor: object) -> tuple[B, str]:
    """A batch in review whose host payment failed: when the chain proves nothing was sent (the
    transaction in its sending slot, deep enough, is another one, or is ours and reverted), its rows go
    to the next batch."""
    require_permission(actor, OPERATE_BATCH)
    batch = flow.model._default_manager.get(pk=batch_id)
    host_payment = batch.host_payment
    if batch.status != BatchStatus.FAILED or host_payment is None or host_payment.status != HostPaymentStatus.FAILED:
        return batch, "only a batch in review whose host payment failed qualifies"
    if not flow.can_release(batch):
        return batch, f"it has no rows to release. {flow.release_note}"
    try:
        proof = chain_adapter(host_payment.chain).nothing_was_sent(host_payment)
    except TransientError as exc:
        return batch, f"the chain cannot be asked now ({exc}); try again"
    if proof is None:
        return batch, "the chain does not prove that nothing was sent: re-verify the host payment instead"
    return _release_with_proof(
        flow, batch, BatchStatus.FAILED, actor, "release_unsent", f"nothing was sent: {proof}", payment_failed=True
    )


def release_refunded(flow: ExchangeFundedFlow[B], batch_id: int, *, actor: object) -> tuple[B, str]:
    """A refunded batch whose refund is back on chain, at the address the deposit came from:
    its rows go to the next batch. A refund short of what was sent (the exchange's fees) is
    said in the history; the rows are released at their full value and the shortfall is the
    platform's to settle."""
    require_permission(actor, OPERATE_BATCH)
    batch = flow.model._default_manager.get(pk=batch_id)
    host_payment = batch.host_payment
    if batch.status != BatchStatus.REFUNDED or batch.exchange_id is None or host_payment is None:
        return batch, "only a refunded batch qualifies"
    if not flow.can_release(batch):
        return batch, f"it has no rows to release. {flow.release_note}"
    try:
        state = exchange_provider(batch.exchange_provider).status(exchange_ref(batch))
        back = None
        if state.refund_hash:
            back = chain_adapter(host_payment.chain).received(
                state.refund_hash, host_payment.from_address, host_payment.asset
            )
    except (TransientError, ExchangeError) as exc:
        return batch, f"the exchange or the chain cannot be asked now ({exc}); try again"
    if not back:
        return batch, f"the refund is not back on chain yet (refund tx {state.refund_hash or 'unknown'})"
    proof = f"refund {state.refund_hash} returned {back.normalize():f} {host_payment.asset.upper()} to the hot wallet"
    if back < host_payment.amount:
        proof += f" ({(host_payment.amount - back).normalize():f} short of what was sent)"
    return _release_with_proof(flow, batch, BatchStatus.REFUNDED, actor, "release_refunded", proof)


def _release_with_proof(
    flow: ExchangeFundedFlow[B],
    batch: B,
    expected: BatchStatus,
    actor: object,
    action: str,
    proof: str,
    *,
    payment_failed: bool = False,
) -> tuple[B, str]:
    with transaction.atomic():
        locked, host_payment = lock_batch_and_host_payment(flow.model, batch.pk)
        if locked.status != expected:
            return locked, f"it is {locked.status} now"
        if payment_failed and (host_payment is None or host_payment.status != HostPaymentStatus.FAILED):
            return locked, "its host payment is no longer failed (re-verified meanwhile?)"
        released = flow.release_rows(locked)
        transition(
            flow.machine,
            locked.pk,
            from_status=expected,
            to_status=BatchStatus.CANCELLED,
            actor=actor,
            action=action,
            reason=f"{proof}; {released} row(s) released",
            updates={"review_reason": f"{proof}; rows released", "next_action_at": None},
        )
    locked.refresh_from_db()
    logger.warning("%s #%s: %s; %s rows released by %s", flow.kind, locked.pk, proof, released, actor)
    return locked, f"{released} row(s) released ({proof})"
