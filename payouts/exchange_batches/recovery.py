"""An exchange-funded flow's part of the recovery sweep: re-drive the batches whose next step is
late (a lost message, a dead worker), and move the ones past their deadline on, with an alert:

    ALERT batch_deadline_passed kind=conversion id=12 state=funding age=21650s last_error=...
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from pgp_project.operations.flows import SweepResult
from pgp_project.operations.scheduling import schedule_step

from .flow import B, ExchangeFundedFlow
from .operator import cancel_unfunded
from .states import OPEN_STATUSES, BatchStatus
from .transitions import to_review

logger = logging.getLogger(__name__)


def sweep_batches(flow: ExchangeFundedFlow[B], now: datetime) -> SweepResult:
    result = SweepResult()
    for batch_id in overdue(flow, now, timedelta(seconds=settings.PGP_OVERDUE_GRACE_SECONDS)):
        try:
            batch = flow.model._default_manager.get(pk=batch_id)
            past_deadline = batch.deadline_at is not None and batch.deadline_at < now
            # Funds are at the exchange while exchanging: keep following it (an expired batch
            # could never be finished), and say loudly that it is late.
            if past_deadline and batch.status != BatchStatus.EXCHANGING:
                expire(flow, batch, now)
                result.expired.append(batch_id)
                continue
            if past_deadline:
                logger.error("ALERT exchange_overdue kind=%s id=%s exchange=%s", flow.kind, batch_id, batch.exchange_id)
            if schedule_step(flow.model, batch_id, flow.advance_task, 0):
                result.redriven.append(batch_id)
        except Exception:  # one broken batch must not stop the sweep for the others
            logger.exception("ALERT recovery_failed kind=%s id=%s", flow.kind, batch_id)
    return result


def overdue(flow: ExchangeFundedFlow[B], now: datetime, grace: timedelta) -> list[int]:
    """Open batches whose scheduled next step is late."""
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    return list(flow.model._default_manager.filter(late, status__in=OPEN_STATUSES).values_list("id", flat=True))


def expire(flow: ExchangeFundedFlow[B], batch: B, now: datetime) -> None:
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
