"""The chain shared by conversions and client payouts: one ChangeNOW exchange per batch, funded
by one host payment from the hot wallet, polled until terminal (DESIGN.md "State machines").

created (-> awaiting_approval -> approved) -> swap_created -> funding -> funded -> exchanging ->
completed; cancelled (nothing sent: rows released); failed / refunded (held for review).

Every step reads the batch's state from the database and does only what that state still needs,
so `advance` may run twice, late, or concurrently with itself. A `Flow` says what differs between
the two kinds of batch: the pair, the amount and asset sent, where the exchange pays out, what
finishing means (distribute / mark paid out) and how unfunded rows are released.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.changenow import ChangeNowClient, ChangeNowRejected, ExchangeState
from payouts.host_payments import ADVANCE_TASK as HOST_PAYMENT_TASK
from payouts.host_payments import HostPaymentMismatch, ensure_host_payment, hot_wallet
from payouts.models import HostAsset, HostPayment, HostPaymentStatus
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step

from .states import TERMINAL_STATUSES, BatchStatus

logger = logging.getLogger(__name__)

OPEN_STATUSES = [
    BatchStatus.CREATED,
    BatchStatus.APPROVED,
    BatchStatus.SWAP_CREATED,
    BatchStatus.FUNDING,
    BatchStatus.FUNDED,
    BatchStatus.EXCHANGING,
]


@dataclass(frozen=True)
class ExchangePair:
    from_currency: str
    from_network: str
    to_currency: str
    to_network: str

    @property
    def is_direct(self) -> bool:
        """Same asset on both sides: nothing to exchange, the host payment pays the payee."""
        return (self.from_currency, self.from_network) == (self.to_currency, self.to_network)


DIRECT_EXCHANGE_PREFIX = "direct-"


Batch = Any  # BatchConversion | PayoutBatch: the same flow fields on both models


@dataclass(frozen=True)
class Flow:
    kind: str  # "conversion" | "payout": in logs and alert lines
    model: type[models.Model]
    advance_task: str
    host_owner_field: str  # HostPayment's link to this kind of batch
    expected_field: str  # where ChangeNOW's estimate of the received amount is kept
    pair: Callable[[Batch], ExchangePair]
    host_asset: Callable[[Batch], HostAsset]
    send_amount: Callable[[Batch], Decimal]
    payout_address: Callable[[Batch], str]
    finish: Callable[[int, ExchangeState], None]  # in one transaction; no-op if already done
    release_rows: Callable[[Batch], int]  # put an unfunded batch's rows back where they came from
    before_exchange: Callable[[Batch, ChangeNowClient], Batch] | None = None
    # Whether cancelling may simply release the batch's rows; when not (an instant payout has
    # no rows to return to), the batch goes to review with `release_note` instead.
    can_release: Callable[[Batch], bool] = lambda batch: True
    release_note: str = ""


def advance(flow: Flow, batch_id: int, client: ChangeNowClient | None = None) -> Batch:
    """Perform the next step this batch's state needs (each step is idempotent)."""
    client = client or ChangeNowClient()
    batch = flow.model.objects.get(pk=batch_id)
    if batch.status in (BatchStatus.CREATED, BatchStatus.APPROVED) and batch.exchange_id is None:
        if flow.before_exchange is not None:
            batch = flow.before_exchange(batch, client)
        if batch.status in (BatchStatus.CREATED, BatchStatus.APPROVED):
            if flow.pair(batch).is_direct:
                batch = _set_up_direct_payment(flow, batch)
            else:
                batch = _create_exchange(flow, batch, client)
    if batch.status == BatchStatus.SWAP_CREATED:
        batch = _start_funding(flow, batch, client)
    if batch.status == BatchStatus.FUNDING:
        batch = _follow_funding(flow, batch)
    if batch.status == BatchStatus.FUNDED:
        batch = transition(flow, batch, BatchStatus.FUNDED, BatchStatus.EXCHANGING)
    if batch.status == BatchStatus.EXCHANGING:
        batch = _poll_exchange(flow, batch, client)
    return batch


def _set_up_direct_payment(flow: Flow, batch: Batch) -> Batch:
    """No exchange for a same-asset payout (e.g. USDT ERC-20 to a USDT ERC-20 wallet): the host
    payment goes straight to the payee, and the rest of the chain runs unchanged."""
    amount = flow.send_amount(batch)
    flow.model.objects.filter(pk=batch.pk, status=batch.status, exchange_id__isnull=True).update(
        status=BatchStatus.SWAP_CREATED,
        exchange_id=f"{DIRECT_EXCHANGE_PREFIX}{flow.kind}-{batch.pk}",
        payin_address=flow.payout_address(batch),
        exchange_from_amount=amount,
        exchange_status="direct",
        updated_at=timezone.now(),
        **{flow.expected_field: amount},
    )
    batch.refresh_from_db()
    return batch


def _create_exchange(flow: Flow, batch: Batch, client: ChangeNowClient) -> Batch:
    pair = flow.pair(batch)
    amount = flow.send_amount(batch)
    estimate = client.estimate(
        from_currency=pair.from_currency,
        from_network=pair.from_network,
        to_currency=pair.to_currency,
        to_network=pair.to_network,
        from_amount=amount,
    )
    try:
        exchange = client.create_exchange(
            from_currency=pair.from_currency,
            from_network=pair.from_network,
            to_currency=pair.to_currency,
            to_network=pair.to_network,
            from_amount=amount,
            address=flow.payout_address(batch),
            refund_address=hot_wallet().address,
            rate_id=estimate.rate_id,
        )
    except ChangeNowRejected as exc:
        # Nothing was sent: release the rows so a later check can try again, and say why.
        return cancel_unfunded(
            flow, batch.pk, reason=f"ChangeNOW refused the exchange: {exc}", only_from_status=batch.status
        )
    # Only the first stored exchange is ever funded (reliability rule 4); one created by a
    # concurrent or earlier ambiguous attempt is recorded as abandoned and expires unfunded.
    stored = flow.model.objects.filter(pk=batch.pk, status=batch.status, exchange_id__isnull=True).update(
        status=BatchStatus.SWAP_CREATED,
        exchange_id=exchange.id,
        payin_address=exchange.payin_address,
        exchange_from_amount=exchange.from_amount,
        exchange_status="waiting",
        updated_at=timezone.now(),
        **{flow.expected_field: exchange.to_amount},
    )
    if stored:
        logger.info("%s #%s: exchange %s created, payin %s", flow.kind, batch.pk, exchange.id, exchange.payin_address)
    else:
        with transaction.atomic():  # under the row lock, so concurrent losers all get recorded
            locked = flow.model.objects.select_for_update().get(pk=batch.pk)
            locked.abandoned_exchange_ids = [*locked.abandoned_exchange_ids, exchange.id]
            locked.save(update_fields=["abandoned_exchange_ids"])
        logger.warning("%s #%s: exchange %s abandoned, the stored one is funded", flow.kind, batch.pk, exchange.id)
    batch.refresh_from_db()
    return batch


def _start_funding(flow: Flow, batch: Batch, client: ChangeNowClient) -> Batch:
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
    if not batch.exchange_id.startswith(DIRECT_EXCHANGE_PREFIX):
        # A fixed-rate exchange only takes a deposit while it waits for one.
        state = client.exchange_state(batch.exchange_id)
        if state.status not in ("new", "waiting"):
            return to_review(
                flow,
                batch,
                BatchStatus.FAILED,
                f"exchange {batch.exchange_id} is {state.status!r}, no longer waiting for a deposit; nothing "
                "was sent. Cancel it in the admin to release the rows.",
            )
    try:
        with transaction.atomic():
            # Under the batch lock, so a concurrent cancel either sees our host payment (and
            # refuses) or has already cancelled (and we create nothing).
            locked = flow.model.objects.select_for_update().get(pk=batch.pk)
            if locked.status != BatchStatus.SWAP_CREATED:
                batch.refresh_from_db()
                return batch
            payment = ensure_host_payment(
                owner=locked, asset=flow.host_asset(locked), amount=amount, to_address=locked.payin_address
            )
            batch = transition(flow, locked, BatchStatus.SWAP_CREATED, BatchStatus.FUNDING)
            enqueue_after_commit(HOST_PAYMENT_TASK, payment.pk)
    except HostPaymentMismatch as exc:
        return to_review(flow, batch, BatchStatus.FAILED, str(exc))
    return batch


def _follow_funding(flow: Flow, batch: Batch) -> Batch:
    payment = HostPayment.objects.filter(**{flow.host_owner_field: batch}).first()
    if payment is None:  # cannot happen through _start_funding; be loud if it does
        return to_review(flow, batch, BatchStatus.FAILED, "funding without a host payment")
    if payment.status == HostPaymentStatus.CONFIRMED:
        return transition(flow, batch, BatchStatus.FUNDING, BatchStatus.FUNDED)
    if payment.status == HostPaymentStatus.FAILED:
        return to_review(flow, batch, BatchStatus.FAILED, f"host payment failed: {payment.last_error}")
    # The host payment drives itself and wakes us when it settles; this is the safety net.
    schedule_step(flow.model, batch.pk, flow.advance_task, settings.PGP_CHAIN_POLL_SECONDS * 2)
    return batch


def _poll_exchange(flow: Flow, batch: Batch, client: ChangeNowClient) -> Batch:
    if batch.exchange_id.startswith(DIRECT_EXCHANGE_PREFIX):
        state = _direct_payment_state(flow, batch)
    else:
        state = client.exchange_state(batch.exchange_id)
    flow.model.objects.filter(pk=batch.pk).update(exchange_status=state.status[:20])
    if not state.is_known:
        logger.error("ALERT changenow_unknown_status kind=%s id=%s status=%r", flow.kind, batch.pk, state.status)
    if state.status == "finished":
        if state.amount_to is None:
            return to_review(flow, batch, BatchStatus.FAILED, "ChangeNOW finished without amountTo")
        flow.finish(batch.pk, state)
    elif state.status in ("failed", "refunded"):
        status = BatchStatus.FAILED if state.status == "failed" else BatchStatus.REFUNDED
        reason = f"ChangeNOW exchange {state.status}"
        if state.refund_hash:
            reason += f" (refund tx {state.refund_hash})"
        return to_review(flow, batch, status, reason)
    else:
        schedule_step(flow.model, batch.pk, flow.advance_task, settings.PGP_EXCHANGE_POLL_SECONDS)
    batch.refresh_from_db()
    return batch


def _direct_payment_state(flow: Flow, batch: Batch) -> ExchangeState:
    """A direct payment is finished once its host payment is confirmed (we are only here then)."""
    payment = HostPayment.objects.get(**{flow.host_owner_field: batch})
    return ExchangeState(
        id=batch.exchange_id,
        status="finished",
        amount_from=payment.amount,
        amount_to=payment.amount,
        expected_amount_to=payment.amount,
        payin_hash=payment.tx_hash or "",
        payout_hash=payment.tx_hash or "",
        refund_hash="",
    )


def transition(flow: Flow, batch: Batch, from_status: BatchStatus, to_status: BatchStatus) -> Batch:
    """Compare-and-set; whatever the outcome, return the state as the database has it."""
    flow.model.objects.filter(pk=batch.pk, status=from_status).update(status=to_status, updated_at=timezone.now())
    batch.refresh_from_db()
    return batch


def to_review(flow: Flow, batch: Batch, status: BatchStatus, reason: str) -> Batch:
    """Hold the batch and its rows as they are for an operator, and alert (funds may have moved)."""
    # Compare-and-set on the status this run read: a stale run cannot fail a batch that has
    # moved on meanwhile.
    changed = (
        flow.model.objects.filter(pk=batch.pk, status=batch.status)
        .exclude(status__in=TERMINAL_STATUSES)
        .update(status=status, review_reason=reason, next_action_at=None, updated_at=timezone.now())
    )
    batch.refresh_from_db()
    if changed:
        logger.error(
            "ALERT batch_review kind=%s id=%s status=%s age=%ss reason=%s",
            flow.kind,
            batch.pk,
            status,
            int((timezone.now() - batch.created_at).total_seconds()),
            reason,
        )
    return batch


def cancel_unfunded(flow: Flow, batch_id: int, *, reason: str, only_from_status: str | None = None) -> Batch:
    """Cancel a batch whose host payment never left (none, or never signed) and release its
    rows. Refused (the batch is returned unchanged) for anything that may have moved funds."""
    with transaction.atomic():
        batch = flow.model.objects.select_for_update().get(pk=batch_id)
        # Lock the host payment too (always batch first, then payment): signing holds both, so
        # the payment is either signed before we look (and we refuse) or never signed.
        payment = HostPayment.objects.select_for_update().filter(**{flow.host_owner_field: batch}).first()
        may_have_sent = payment is not None and payment.status != HostPaymentStatus.CREATED
        cancellable = batch.status in (
            BatchStatus.CREATED,
            BatchStatus.AWAITING_APPROVAL,
            BatchStatus.APPROVED,
            BatchStatus.SWAP_CREATED,
            BatchStatus.FUNDING,
            BatchStatus.FAILED,
        )
        if only_from_status is not None and (batch.status != only_from_status or batch.exchange_id is not None):
            return batch
        if may_have_sent or not cancellable:
            return batch
        if not flow.can_release(batch):
            return to_review(flow, batch, BatchStatus.FAILED, f"{reason}; nothing was sent. {flow.release_note}")
        released = flow.release_rows(batch)
        if payment is not None:
            payment.delete()  # never signed: no transaction exists for it
        batch.status = BatchStatus.CANCELLED
        batch.review_reason = reason
        batch.next_action_at = None
        batch.save()
    logger.warning("%s #%s cancelled, %s rows released: %s", flow.kind, batch.pk, released, reason)
    return batch


def resume_funded(flow: Flow, batch_id: int, *, note: str) -> Batch:
    """Operator action: a batch sent to review although its host payment did confirm (for
    example it passed its deadline while funding) goes back to following its exchange, so it
    can still finish. Refused unless the payment is confirmed and an exchange exists."""
    with transaction.atomic():
        batch = flow.model.objects.select_for_update().get(pk=batch_id)
        payment = HostPayment.objects.filter(**{flow.host_owner_field: batch}).first()
        if (
            batch.status != BatchStatus.FAILED
            or batch.exchange_id is None
            or payment is None
            or payment.status != HostPaymentStatus.CONFIRMED
        ):
            return batch
        batch.status = BatchStatus.EXCHANGING
        batch.review_reason = f"resumed ({note}) after: {batch.review_reason}"[:2000]
        batch.next_action_at = None
        batch.save()
        schedule_step(flow.model, batch.pk, flow.advance_task, 0)
    logger.warning("%s #%s resumed: following exchange %s again (%s)", flow.kind, batch.pk, batch.exchange_id, note)
    return batch


def overdue(flow: Flow, now: datetime, grace: timedelta) -> list[int]:
    """Open batches whose scheduled next step is late (a lost message, a dead worker)."""
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    return list(flow.model.objects.filter(late, status__in=OPEN_STATUSES).values_list("id", flat=True))


def expire(flow: Flow, batch: Batch, now: datetime) -> None:
    """Past its deadline: cancel if nothing can have been sent, else hold for review; alert."""
    age = int((now - batch.created_at).total_seconds())
    logger.error(
        "ALERT batch_deadline_passed kind=%s id=%s state=%s age=%ss last_error=%s",
        flow.kind,
        batch.pk,
        batch.status,
        age,
        batch.last_error or "-",
    )
    reason = f"deadline passed in state {batch.status} after {age}s; last error: {batch.last_error or '-'}"
    if cancel_unfunded(flow, batch.pk, reason=reason).status != BatchStatus.CANCELLED:
        to_review(flow, batch, BatchStatus.FAILED, reason)
