"""Instant payouts below the exchange's minimum wait (waiting_minimum) for the same client's later
ones; once their sum passes the minimum they are merged into one payout, which then follows the
usual chain. Each waiting payout becomes `merged`, naming the payout that pays its ETH."""

import logging
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from integrations.exchange import routing
from integrations.exchange.port import ExchangeError
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_created, transition

from .client_payouts import ADVANCE_PAYOUT_TASK, INSTANT_KINDS, payout_pair
from .exchange_batches.states import BatchStatus
from .locking import lock_batches
from .models import PAYOUT_MACHINE, PayoutBatch, PayoutKind

logger = logging.getLogger(__name__)

Destination = tuple[int, str, str, str, str]  # client, currency, network, wallet, memo


def merge_waiting_instant_payouts() -> list[int]:
    """One merged payout per client destination whose waiting payouts now pass the minimum."""
    waiting: dict[Destination, list[int]] = defaultdict(list)
    rows = PayoutBatch.objects.filter(status=BatchStatus.WAITING_MINIMUM, kind__in=INSTANT_KINDS).order_by("id")
    for batch_id, client_id, currency, network, wallet, memo in rows.values_list(
        "id", "client_id", "payout_currency", "payout_network", "wallet_address", "payout_extra_id"
    ):
        waiting[(client_id, currency, network, wallet, memo)].append(batch_id)
    merged = []
    for destination, batch_ids in waiting.items():
        minimum = _minimum(destination)
        total = PayoutBatch.objects.filter(pk__in=batch_ids).aggregate(total=Sum("source_amount"))["total"]
        if minimum is not None and total is not None and total >= minimum:
            merged_id = _merge(batch_ids, minimum)
            if merged_id is not None:
                merged.append(merged_id)
    return merged


def _minimum(destination: Destination) -> Decimal | None:
    _, currency, network, _, _ = destination
    pair = payout_pair(PayoutKind.INSTANT, currency, network)
    try:
        return routing.minimum(pair)
    except ExchangeError as exc:
        logger.warning("instant payouts %s: exchange minimum unavailable (%s); trying next run", destination, exc)
        return None


def _merge(batch_ids: list[int], minimum: Decimal) -> int | None:
    with transaction.atomic():
        parts = [batch for batch in lock_batches(PayoutBatch, batch_ids) if batch.status == BatchStatus.WAITING_MINIMUM]
        source = sum((part.source_amount for part in parts), Decimal(0))
        if not parts or source < minimum:
            return None  # some were merged (or stopped) meanwhile; the rest waits
        first = parts[0]
        # The value credited decides the approval, as for one instant payout.
        priced = sum((part.payment.price_to_credit for part in parts if part.payment is not None), Decimal(0))
        needs_approval = priced > get_runtime_settings().payout_approval_limit_usdt
        merged = PayoutBatch.objects.create(
            kind=PayoutKind.INSTANT_MERGED,
            client_id=first.client_id,
            exchange_provider=first.exchange_provider,
            wallet_address=first.wallet_address,
            payout_extra_id=first.payout_extra_id,
            payout_currency=first.payout_currency,
            payout_network=first.payout_network,
            source_currency=first.source_currency,
            source_amount=source,
            fee_amount=sum((part.fee_amount for part in parts), Decimal(0)),
            status=BatchStatus.AWAITING_APPROVAL if needs_approval else BatchStatus.CREATED,
            deadline_at=timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS),
        )
        names = ", ".join(f"#{part.pk}" for part in parts)
        record_created(PAYOUT_MACHINE.subject, merged.pk, merged.status, reason=f"merges payouts {names}")
        for part in parts:
            transition(
                PAYOUT_MACHINE,
                part.pk,
                from_status=BatchStatus.WAITING_MINIMUM,
                to_status=BatchStatus.MERGED,
                action="merge",
                reason=f"merged into payout #{merged.pk} with {names}: together over the exchange minimum",
                updates={"merged_into": merged, "next_action_at": None},
            )
        if merged.status == BatchStatus.CREATED:
            schedule_step(PayoutBatch, merged.pk, ADVANCE_PAYOUT_TASK, 0)
    logger.info("payouts %s merged into #%s: %s ETH", names, merged.pk, source)
    return merged.pk
