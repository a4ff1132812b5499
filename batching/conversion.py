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
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from integrations.changenow import ChangeNowClient, ExchangeState
from payments.models import AccumulationStatus, PayoutAccumulation, SourceAsset
from payouts.host_payments import hot_wallet
from payouts.models import HostAsset
from pgp_project.money import USDT_QUANTUM
from pgp_project.operations.locks import try_advisory_xact_lock
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.selectors import get_runtime_settings

from . import exchange_flow
from .distribution import distribute_conversion
from .exchange_flow import ExchangePair, Flow
from .models import BatchConversion

logger = logging.getLogger(__name__)

ADVANCE_TASK = "batching.advance_conversion"
CHECK_LOCK_NAME = "batching.check_threshold"
# The pair of the conversion exchange: ETH on Ethereum -> USDT ERC-20 to the host wallet.
CONVERSION_PAIR = ExchangePair(from_currency="eth", from_network="eth", to_currency="usdt", to_network="eth")


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


def _release_conversion_rows(conversion: BatchConversion) -> int:
    return PayoutAccumulation.objects.filter(batch_conversion=conversion, status=AccumulationStatus.SWAPPING).update(
        status=AccumulationStatus.PENDING, batch_conversion=None, updated_at=timezone.now()
    )


def _distribute(conversion_id: int, state: ExchangeState) -> None:
    # USDT has 6 decimals on chain; a finer figure from the API cannot have arrived as such.
    received = state.amount_to.quantize(USDT_QUANTUM, rounding=ROUND_DOWN)
    if received != state.amount_to:
        logger.warning("conversion #%s: amountTo %s rounded down to %s", conversion_id, state.amount_to, received)
    distribute_conversion(conversion_id, received, state.payout_hash)


CONVERSION_FLOW = Flow(
    kind="conversion",
    model=BatchConversion,
    advance_task=ADVANCE_TASK,
    host_owner_field="conversion",
    expected_field="expected_usdt",
    pair=lambda conversion: CONVERSION_PAIR,
    host_asset=lambda conversion: HostAsset.ETH,
    send_amount=lambda conversion: conversion.total_eth,
    # The USDT comes back to the hot wallet, which later funds the client payouts.
    payout_address=lambda conversion: hot_wallet().address,
    finish=_distribute,
    release_rows=_release_conversion_rows,
)


def advance_conversion(conversion_id: int, client: ChangeNowClient | None = None) -> BatchConversion:
    """Perform the next step this conversion's state needs (each step is idempotent)."""
    return exchange_flow.advance(CONVERSION_FLOW, conversion_id, client)


def cancel_unfunded_conversion(conversion_id: int, *, reason: str) -> BatchConversion:
    """Cancel a conversion that cannot have sent anything and put its rows back to pending."""
    return exchange_flow.cancel_unfunded(CONVERSION_FLOW, conversion_id, reason=reason)
