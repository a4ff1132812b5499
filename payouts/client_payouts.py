"""Client payouts: each client's converted USDT (threshold strategy) or one payment's ETH
(instant strategy) exchanged into the client's currency and paid to the client's wallet.

Reuses the exchange-funded batch chain of batching/exchange_flow.py; this module says only what
is particular to payouts: which rows are claimed, the approval gate, the address check, and what
"finished" means (rows paid out).
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from batching import exchange_flow
from batching.exchange_flow import ExchangePair, Flow
from batching.states import BatchStatus
from integrations.changenow import ChangeNowClient, ChangeNowError, ExchangeState, legacy_ticker
from payments.models import AccumulationStatus, Client, Payment, PayoutAccumulation, PayoutStrategy
from pgp_project.money import ETH_QUANTUM, percent_of
from pgp_project.operations.locks import try_advisory_xact_lock
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.selectors import get_runtime_settings

from .models import HostAsset, PayoutBatch, PayoutKind

logger = logging.getLogger(__name__)

ADVANCE_TASK = "payouts.advance_payout"
CHECK_LOCK_NAME = "payouts.check_client_payouts"
# Our USDT is the ERC-20 on Ethereum; instant payouts send the payment's ETH.
SOURCE_BY_KIND = {PayoutKind.THRESHOLD: ("usdt", "eth"), PayoutKind.INSTANT: ("eth", "eth")}


class PayoutNotAwaitingApproval(Exception):
    pass


# --- what is particular to payouts, plugged into the shared chain ------------------------------


def _pair(batch: PayoutBatch) -> ExchangePair:
    from_currency, from_network = SOURCE_BY_KIND[PayoutKind(batch.kind)]
    return ExchangePair(from_currency, from_network, batch.payout_currency, batch.payout_network)


def _validate_address(batch: PayoutBatch, client: ChangeNowClient) -> PayoutBatch:
    ticker = legacy_ticker(batch.payout_currency, batch.payout_network)
    valid, message = client.validate_address(currency=ticker, address=batch.wallet_address)
    if valid:
        return batch
    return exchange_flow.to_review(
        PAYOUT_FLOW,
        batch,
        BatchStatus.FAILED,
        f"ChangeNOW rejects the wallet address {batch.wallet_address!r} for {batch.payout_currency}: "
        f"{message or 'invalid'}; nothing was sent. Fix the client's wallet, then cancel to release the rows.",
    )


def _finish(batch_id: int, state: ExchangeState) -> None:
    """Record what the client received and mark exactly this batch's rows paid out, atomically."""
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.EXCHANGING:
            return
        now = timezone.now()
        paid = PayoutAccumulation.objects.filter(payout_batch=batch, status=AccumulationStatus.IN_PAYOUT).update(
            status=AccumulationStatus.PAID_OUT, paid_out_at=now, updated_at=now
        )
        if paid != batch.row_count:
            raise RuntimeError(f"payout #{batch.pk}: {paid} rows marked paid out, expected {batch.row_count}")
        batch.status = BatchStatus.COMPLETED
        batch.payout_amount = state.amount_to
        batch.payout_tx_hash = state.payout_hash
        batch.completed_at = now
        batch.next_action_at = None
        batch.save()
    logger.info(
        "payout #%s completed: %s %s to %s (%s rows)",
        batch_id,
        state.amount_to,
        batch.payout_currency,
        batch.wallet_address,
        batch.row_count,
    )


def _release_rows(batch: PayoutBatch) -> int:
    return PayoutAccumulation.objects.filter(payout_batch=batch, status=AccumulationStatus.IN_PAYOUT).update(
        status=AccumulationStatus.CONVERTED, payout_batch=None, updated_at=timezone.now()
    )


PAYOUT_FLOW = Flow(
    kind="payout",
    model=PayoutBatch,
    advance_task=ADVANCE_TASK,
    host_owner_field="payout_batch",
    expected_field="expected_amount",
    pair=_pair,
    host_asset=lambda batch: HostAsset.USDT if batch.kind == PayoutKind.THRESHOLD else HostAsset.ETH,
    send_amount=lambda batch: batch.source_amount,
    payout_address=lambda batch: batch.wallet_address,
    finish=_finish,
    release_rows=_release_rows,
    before_exchange=_validate_address,
    can_release=lambda batch: batch.kind == PayoutKind.THRESHOLD,
    release_note="The instant payment's ETH is still in the hot wallet: pay it out or refund it by hand.",
)


def advance_payout(batch_id: int, client: ChangeNowClient | None = None) -> PayoutBatch:
    return exchange_flow.advance(PAYOUT_FLOW, batch_id, client)


def cancel_unfunded_payout(batch_id: int, *, reason: str) -> PayoutBatch:
    return exchange_flow.cancel_unfunded(PAYOUT_FLOW, batch_id, reason=reason)


# --- threshold strategy: the Beat job ------------------------------------------------------------


def check_client_payouts(client: ChangeNowClient | None = None) -> list[int]:
    """Open one payout batch for each active threshold client whose converted, unclaimed credit
    reached the client's threshold and ChangeNOW's minimum; return the new batch ids."""
    client = client or ChangeNowClient()
    balances = (
        PayoutAccumulation.objects.filter(
            status=AccumulationStatus.CONVERTED,
            payout_batch__isnull=True,
            client__is_active=True,
            client__payout_strategy=PayoutStrategy.THRESHOLD,
        )
        .values("client_id")
        .annotate(credit=Sum("credit_usdt"))
        .order_by("client_id")
    )
    clients = Client.objects.in_bulk([b["client_id"] for b in balances])
    eligible = [
        clients[b["client_id"]]
        for b in balances
        if b["credit"] >= clients[b["client_id"]].payout_threshold_usd
        and _meets_exchange_minimum(clients[b["client_id"]], b["credit"], client)
    ]
    created: list[int] = []
    with transaction.atomic():
        if not try_advisory_xact_lock(CHECK_LOCK_NAME):
            return created
        approval_limit = get_runtime_settings().payout_approval_limit_usdt
        for payee in eligible:
            try:
                with transaction.atomic():  # a savepoint per client: one failure spoils no other
                    batch = _claim_client_rows(payee, approval_limit)
            except DatabaseError:
                logger.exception("ALERT payout_claim_failed client=%s", payee.external_id)
                continue
            if batch is not None:
                created.append(batch.pk)
                if batch.status == BatchStatus.CREATED:
                    schedule_step(PayoutBatch, batch.pk, ADVANCE_TASK, 0)
    return created


def _meets_exchange_minimum(payee: Client, credit: Decimal, client: ChangeNowClient) -> bool:
    """Below ChangeNOW's minimum for the pair the credit simply waits for more (not an error)."""
    source_currency, source_network = SOURCE_BY_KIND[PayoutKind.THRESHOLD]
    if ExchangePair(source_currency, source_network, payee.payout_currency, payee.payout_network).is_direct:
        return True  # paid by a direct transfer: no exchange, no exchange minimum
    try:
        minimum = client.min_amount(
            from_currency=source_currency,
            from_network=source_network,
            to_currency=payee.payout_currency,
            to_network=payee.payout_network,
        )
    except ChangeNowError as exc:
        logger.warning("client %s: ChangeNOW minimum unavailable (%s); trying next run", payee.external_id, exc)
        return False
    if credit < minimum:
        logger.info("client %s: %s USDT is under ChangeNOW's minimum %s; waiting", payee.external_id, credit, minimum)
        return False
    return True


def _claim_client_rows(payee: Client, approval_limit: Decimal) -> PayoutBatch | None:
    """One UPDATE claims this client's converted, unclaimed rows; the batch's total is the sum of
    exactly the claimed rows' credit."""
    # Placeholder amounts satisfy the constraints until the claimed rows' sums replace them.
    batch = PayoutBatch.objects.create(
        kind=PayoutKind.THRESHOLD,
        client=payee,
        wallet_address=payee.wallet_address,
        payout_currency=payee.payout_currency,
        payout_network=payee.payout_network,
        source_currency="usdterc20",
        total_usdt=Decimal(1),
        source_amount=Decimal(1),
        row_count=1,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE payout_accumulation SET status = %s, payout_batch_id = %s, updated_at = %s
             WHERE client_id = %s AND status = %s AND payout_batch_id IS NULL
            """,
            [AccumulationStatus.IN_PAYOUT, batch.pk, timezone.now(), payee.pk, AccumulationStatus.CONVERTED],
        )
        claimed = cursor.rowcount
    if not claimed:
        transaction.set_rollback(True)
        return None
    credits = list(PayoutAccumulation.objects.filter(payout_batch=batch).values_list("credit_usdt", flat=True))
    total = sum(credits, Decimal(0))
    if total < payee.payout_threshold_usd:
        # Eligibility was judged before the lock; what was claimed under it is what counts.
        transaction.set_rollback(True)
        return None
    batch.total_usdt = batch.source_amount = total
    batch.row_count = len(credits)
    batch.status = BatchStatus.AWAITING_APPROVAL if total > approval_limit else BatchStatus.CREATED
    batch.deadline_at = timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS)
    batch.save()
    logger.info(
        "payout #%s for client %s: %s USDT, %s rows, %s",
        batch.pk,
        payee.external_id,
        total,
        batch.row_count,
        batch.status,
    )
    return batch


# --- approval --------------------------------------------------------------------------------------


def approve_payout(batch_id: int, user: object) -> PayoutBatch:
    """A staff user releases a payout above the approval limit; who and when are recorded."""
    now = timezone.now()
    with transaction.atomic():
        approved = PayoutBatch.objects.filter(pk=batch_id, status=BatchStatus.AWAITING_APPROVAL).update(
            status=BatchStatus.APPROVED, approved_by=user, approved_at=now, updated_at=now
        )
        if not approved:
            raise PayoutNotAwaitingApproval(f"payout #{batch_id} is not awaiting approval")
        schedule_step(PayoutBatch, batch_id, ADVANCE_TASK, 0)
    logger.info("payout #%s approved by %s", batch_id, user)
    return PayoutBatch.objects.get(pk=batch_id)


def reject_payout(batch_id: int, user: object) -> PayoutBatch:
    """A staff user refuses the payout: it is cancelled and its rows go back to the balance."""
    with transaction.atomic():
        batch = PayoutBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != BatchStatus.AWAITING_APPROVAL:
            raise PayoutNotAwaitingApproval(f"payout #{batch_id} is not awaiting approval")
        released = _release_rows(batch)
        # A rejected instant payout has no rows to give back: its ETH stays for an operator.
        batch.status = BatchStatus.CANCELLED if batch.kind == PayoutKind.THRESHOLD else BatchStatus.FAILED
        batch.rejected_by = user
        batch.rejected_at = timezone.now()
        batch.review_reason = f"rejected by {user}"
        if batch.kind == PayoutKind.INSTANT:
            batch.review_reason += f"; {PAYOUT_FLOW.release_note}"
        batch.save()
    logger.info("payout #%s rejected by %s; %s rows back to the client's balance", batch_id, user, released)
    return batch


# --- instant strategy ------------------------------------------------------------------------------


def create_instant_payout(payment: Payment, payee: Client, fee_percent: Decimal) -> PayoutBatch:
    """One payout per finished instant payment (unique on the payment): the fee is deducted from
    the ETH first and recorded; the rest is exchanged to the client's currency. Runs inside the
    intake transaction; the chain starts after commit."""
    fee = percent_of(payment.outcome_amount, fee_percent, ETH_QUANTUM)
    # The approval limit is in USDT; the payment's USD price is its measure here (USDT ~ USD).
    needs_approval = payment.price_amount > get_runtime_settings().payout_approval_limit_usdt
    batch, created = PayoutBatch.objects.get_or_create(
        payment=payment,
        defaults={
            "kind": PayoutKind.INSTANT,
            "client": payee,
            "wallet_address": payee.wallet_address,
            "payout_currency": payee.payout_currency,
            "payout_network": payee.payout_network,
            "source_currency": "eth",
            "source_amount": payment.outcome_amount - fee,
            "fee_amount": fee,
            "status": BatchStatus.AWAITING_APPROVAL if needs_approval else BatchStatus.CREATED,
            "deadline_at": timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS),
        },
    )
    if created and batch.status == BatchStatus.CREATED:
        schedule_step(PayoutBatch, batch.pk, ADVANCE_TASK, 0)
    return batch


def overdue_payouts(now: timezone.datetime, grace: timedelta) -> list[int]:
    return exchange_flow.overdue(PAYOUT_FLOW, now, grace)
