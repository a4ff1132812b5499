"""Micro-batch conversion: claim pending ETH rows, exchange ETH -> USDT once, distribute.

The database is the truth: `advance_conversion` reads the conversion's state and performs only
the step that state still needs, so it may run twice, late, or concurrently with itself.

created -> swap_created (exchange stored) -> funding (host payment exists) -> funded (confirmed
on chain) -> exchanging (ChangeNOW confirming/exchanging/sending) -> completed (distributed).
Side exits: cancelled (nothing sent: rows back to pending), failed / refunded (held for review).
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from integrations.changenow import ChangeNowClient, ChangeNowRejected
from payments.models import AccumulationStatus, PayoutAccumulation, SourceAsset
from payouts.host_payments import ADVANCE_TASK as HOST_PAYMENT_TASK
from payouts.host_payments import HostPaymentMismatch, ensure_host_payment, hot_wallet
from payouts.models import HostAsset, HostPayment, HostPaymentStatus
from pgp_project.operations.locks import try_advisory_xact_lock
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step
from pgp_project.operations.selectors import get_runtime_settings

from .distribution import distribute_conversion
from .models import BatchConversion
from .states import BatchStatus

logger = logging.getLogger(__name__)

ADVANCE_TASK = "batching.advance_conversion"
CHECK_LOCK_NAME = "batching.check_threshold"
# The pair of the conversion exchange: ETH on Ethereum -> USDT ERC-20 to the host wallet.
FROM_CURRENCY, FROM_NETWORK, TO_CURRENCY, TO_NETWORK = "eth", "eth", "usdt", "eth"


@dataclass(frozen=True)
class ThresholdCheck:
    pending_net_usd: Decimal
    threshold_usd: Decimal
    conversion_id: int | None
    skipped_locked: bool = False


def check_threshold() -> ThresholdCheck:
    """Beat job body: if pending net USD reached the threshold, claim every pending ETH row
    into one new conversion and enqueue its first step after commit."""
    threshold = get_runtime_settings().micro_batch_threshold_usd
    with transaction.atomic():
        if not try_advisory_xact_lock(CHECK_LOCK_NAME):
            return ThresholdCheck(Decimal(0), threshold, None, skipped_locked=True)
        pending = PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING).aggregate(
            net=Sum("net_usd"), rows=Count("id")
        )
        pending_net = pending["net"] or Decimal(0)
        if not pending["rows"] or pending_net < threshold:
            return ThresholdCheck(pending_net, threshold, None)
        conversion = _claim_pending_rows(threshold)
        if conversion is None:
            return ThresholdCheck(pending_net, threshold, None)
        conversion.deadline_at = timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS)
        conversion.save(update_fields=["deadline_at"])
        schedule_step(BatchConversion, conversion.pk, ADVANCE_TASK, 0)
    logger.info(
        "conversion #%s created: %s rows, %s ETH, net %s USD",
        conversion.pk,
        conversion.row_count,
        conversion.total_eth,
        conversion.total_net_usd,
    )
    return ThresholdCheck(conversion.total_net_usd, threshold, conversion.pk)


def _claim_pending_rows(threshold: Decimal) -> BatchConversion | None:
    """One UPDATE claims exactly the rows that are pending at that instant (under the advisory
    lock, nothing else claims); the conversion's totals come from those same rows, so every
    claimed row contributed its ETH."""
    # Placeholder totals satisfy the constraints until the claimed rows' sums replace them.
    conversion = BatchConversion.objects.create(
        threshold_usd=threshold, total_gross_usd=0, total_net_usd=0, total_eth=Decimal("1"), row_count=1
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE payout_accumulation
               SET status = %s, batch_conversion_id = %s, updated_at = %s
             WHERE status = %s AND source_asset = %s
            """,
            [AccumulationStatus.SWAPPING, conversion.pk, now, AccumulationStatus.PENDING, SourceAsset.ETH],
        )
        claimed_count = cursor.rowcount
    if not claimed_count:
        transaction.set_rollback(True)
        return None
    # Read back through the ORM so each backend converts amounts exactly (PostgreSQL numerics;
    # SQLite's floats via Django's decimal converter), and sum in Python, exactly.
    claimed = list(
        PayoutAccumulation.objects.filter(batch_conversion=conversion).values_list(
            "gross_usd", "net_usd", "source_amount"
        )
    )
    conversion.total_gross_usd = sum((gross for gross, _, _ in claimed), Decimal(0))
    conversion.total_net_usd = sum((net for _, net, _ in claimed), Decimal(0))
    conversion.total_eth = sum((eth for _, _, eth in claimed), Decimal(0))
    conversion.row_count = len(claimed)
    conversion.save()
    return conversion


def advance_conversion(conversion_id: int, client: ChangeNowClient | None = None) -> BatchConversion:
    """Perform the next step this conversion's state needs (each step is idempotent)."""
    client = client or ChangeNowClient()
    conversion = BatchConversion.objects.get(pk=conversion_id)
    if conversion.status == BatchStatus.CREATED:
        conversion = _create_exchange(conversion, client)
    if conversion.status == BatchStatus.SWAP_CREATED:
        conversion = _start_funding(conversion)
    if conversion.status == BatchStatus.FUNDING:
        conversion = _follow_funding(conversion)
    if conversion.status == BatchStatus.FUNDED:
        conversion = _transition(conversion, BatchStatus.FUNDED, BatchStatus.EXCHANGING)
    if conversion.status == BatchStatus.EXCHANGING:
        conversion = _poll_exchange(conversion, client)
    return conversion


def _create_exchange(conversion: BatchConversion, client: ChangeNowClient) -> BatchConversion:
    host = hot_wallet().address
    estimate = client.estimate(
        from_currency=FROM_CURRENCY,
        from_network=FROM_NETWORK,
        to_currency=TO_CURRENCY,
        to_network=TO_NETWORK,
        from_amount=conversion.total_eth,
    )
    try:
        exchange = client.create_exchange(
            from_currency=FROM_CURRENCY,
            from_network=FROM_NETWORK,
            to_currency=TO_CURRENCY,
            to_network=TO_NETWORK,
            from_amount=conversion.total_eth,
            address=host,
            refund_address=host,
            rate_id=estimate.rate_id,
        )
    except ChangeNowRejected as exc:
        # Nothing was sent: release the rows so the next check can try again, and say why.
        return cancel_unfunded_conversion(conversion.pk, reason=f"ChangeNOW refused the exchange: {exc}")
    # Only the first stored exchange is ever funded (reliability rule 4); one created by a
    # concurrent or earlier ambiguous attempt is recorded as abandoned and expires unfunded.
    stored = BatchConversion.objects.filter(
        pk=conversion.pk, status=BatchStatus.CREATED, exchange_id__isnull=True
    ).update(
        status=BatchStatus.SWAP_CREATED,
        exchange_id=exchange.id,
        payin_address=exchange.payin_address,
        exchange_from_amount=exchange.from_amount,
        expected_usdt=exchange.to_amount,
        exchange_status="waiting",
        updated_at=timezone.now(),
    )
    if not stored:
        with transaction.atomic():  # under the row lock, so concurrent losers all get recorded
            locked = BatchConversion.objects.select_for_update().get(pk=conversion.pk)
            locked.abandoned_exchange_ids = [*locked.abandoned_exchange_ids, exchange.id]
            locked.save(update_fields=["abandoned_exchange_ids"])
        conversion.refresh_from_db()
        logger.warning(
            "conversion #%s: exchange %s abandoned, %s kept", conversion.pk, exchange.id, conversion.exchange_id
        )
    else:
        conversion.refresh_from_db()
        logger.info("conversion #%s: exchange %s created, payin %s", conversion.pk, exchange.id, exchange.payin_address)
    return conversion


def _start_funding(conversion: BatchConversion) -> BatchConversion:
    if conversion.exchange_from_amount != conversion.total_eth:
        # Never send an amount other than what the rows contributed, and never silently.
        return _to_review(
            conversion,
            BatchStatus.FAILED,
            f"exchange fromAmount {conversion.exchange_from_amount} != batch ETH {conversion.total_eth}; "
            "nothing was sent. Cancel it in the admin to release the rows.",
        )
    try:
        with transaction.atomic():
            payment = ensure_host_payment(
                owner=conversion, asset=HostAsset.ETH, amount=conversion.total_eth, to_address=conversion.payin_address
            )
            conversion = _transition(conversion, BatchStatus.SWAP_CREATED, BatchStatus.FUNDING)
            enqueue_after_commit(HOST_PAYMENT_TASK, payment.pk)
    except HostPaymentMismatch as exc:
        return _to_review(conversion, BatchStatus.FAILED, str(exc))
    return conversion


def _follow_funding(conversion: BatchConversion) -> BatchConversion:
    payment = HostPayment.objects.filter(conversion=conversion).first()
    if payment is None:  # cannot happen through _start_funding; be loud if it does
        return _to_review(conversion, BatchStatus.FAILED, "funding without a host payment")
    if payment.status == HostPaymentStatus.CONFIRMED:
        return _transition(conversion, BatchStatus.FUNDING, BatchStatus.FUNDED)
    if payment.status == HostPaymentStatus.FAILED:
        return _to_review(conversion, BatchStatus.FAILED, f"host payment failed: {payment.last_error}")
    # The host payment drives itself and wakes us when it settles; this is the safety net.
    schedule_step(BatchConversion, conversion.pk, ADVANCE_TASK, settings.PGP_CHAIN_POLL_SECONDS * 2)
    return conversion


def _poll_exchange(conversion: BatchConversion, client: ChangeNowClient) -> BatchConversion:
    state = client.exchange_state(conversion.exchange_id)
    BatchConversion.objects.filter(pk=conversion.pk).update(exchange_status=state.status[:20])
    if not state.is_known:
        logger.error("ALERT changenow_unknown_status conversion=%s status=%r", conversion.pk, state.status)
    if state.status == "finished":
        if state.amount_to is None:
            return _to_review(conversion, BatchStatus.FAILED, "ChangeNOW finished without amountTo")
        distribute_conversion(conversion.pk, state.amount_to, state.payout_hash)
        conversion.refresh_from_db()
        return conversion
    if state.status in ("failed", "refunded"):
        status = BatchStatus.FAILED if state.status == "failed" else BatchStatus.REFUNDED
        reason = f"ChangeNOW exchange {state.status}"
        if state.refund_hash:
            reason += f" (refund tx {state.refund_hash})"
        return _to_review(conversion, status, reason)
    schedule_step(BatchConversion, conversion.pk, ADVANCE_TASK, settings.PGP_EXCHANGE_POLL_SECONDS)
    conversion.refresh_from_db()
    return conversion


def _transition(conversion: BatchConversion, from_status: BatchStatus, to_status: BatchStatus) -> BatchConversion:
    """Compare-and-set; whatever the outcome, return the state as the database has it."""
    BatchConversion.objects.filter(pk=conversion.pk, status=from_status).update(
        status=to_status, updated_at=timezone.now()
    )
    conversion.refresh_from_db()
    return conversion


def move_to_review(conversion_id: int, status: BatchStatus, reason: str) -> BatchConversion:
    return _to_review(BatchConversion.objects.get(pk=conversion_id), status, reason)


def _to_review(conversion: BatchConversion, status: BatchStatus, reason: str) -> BatchConversion:
    """Funds may have moved: hold the rows as they are for an operator, and alert."""
    changed = (
        BatchConversion.objects.filter(pk=conversion.pk)
        .exclude(status__in=[BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED, BatchStatus.REFUNDED])
        .update(status=status, review_reason=reason, next_action_at=None, updated_at=timezone.now())
    )
    conversion.refresh_from_db()
    if changed:
        logger.error(
            "ALERT conversion_review conversion=%s status=%s age=%ss reason=%s",
            conversion.pk,
            status,
            int((timezone.now() - conversion.created_at).total_seconds()),
            reason,
        )
    return conversion


def cancel_unfunded_conversion(conversion_id: int, *, reason: str) -> BatchConversion:
    """Cancel a conversion whose host payment never left (none, or never signed) and put its
    rows back to pending. Refused for anything that may have moved funds."""
    with transaction.atomic():
        conversion = BatchConversion.objects.select_for_update().get(pk=conversion_id)
        # Lock the host payment too: signing holds this lock, so it is either signed before we
        # look (and we refuse) or it finds its row gone and signs nothing.
        payment = HostPayment.objects.select_for_update().filter(conversion=conversion).first()
        may_have_sent = payment is not None and payment.status != HostPaymentStatus.CREATED
        if may_have_sent or conversion.status in (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.REFUNDED):
            return conversion
        if conversion.status not in (BatchStatus.CREATED, BatchStatus.SWAP_CREATED, BatchStatus.FAILED):
            return conversion
        released = PayoutAccumulation.objects.filter(
            batch_conversion=conversion, status=AccumulationStatus.SWAPPING
        ).update(status=AccumulationStatus.PENDING, batch_conversion=None, updated_at=timezone.now())
        if payment is not None:
            payment.delete()  # never signed: no transaction exists for it
        conversion.status = BatchStatus.CANCELLED
        conversion.review_reason = reason
        conversion.next_action_at = None
        conversion.save()
    logger.warning("conversion #%s cancelled, %s rows released: %s", conversion.pk, released, reason)
    return conversion


def overdue_conversions(now: timezone.datetime, grace: timedelta) -> list[int]:
    """Open conversions whose scheduled next step is late (a lost message, a dead worker)."""
    open_statuses = [
        BatchStatus.CREATED,
        BatchStatus.SWAP_CREATED,
        BatchStatus.FUNDING,
        BatchStatus.FUNDED,
        BatchStatus.EXCHANGING,
    ]
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    return list(BatchConversion.objects.filter(late, status__in=open_statuses).values_list("id", flat=True))
