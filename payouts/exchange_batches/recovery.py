"""An exchange-funded flow's part of the recovery sweep: re-drive the batches whose next step is
late (a lost message, a dead worker), and move the ones past their deadline on, with an alert:

    ALERT batch_deadline_passed kind=conversion id=12 state=funding age=21650s last_error=...
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from pgp_project.operations.alerts import RECOVERY_FAILED, Subject, alert
from pgp_project.operations.flows import SweepResult
from pgp_project.operations.scheduling import schedule_step

from ..alerts import BATCH_DEADLINE_PASSED, PAYOUT_BELOW_MINIMUM_OVERDUE
from .flow import B, ExchangeFundedFlow
from .operator import cancel_unfunded
from .states import DEADLINE_STATUSES, OPEN_STATUSES, BatchStatus
from .transitions import to_review


def sweep_batches(flow: ExchangeFundedFlow[B], now: datetime) -> SweepResult:
    """Every batch past its deadline is moved on, whether or not its steps run on time; then
    every open batch whose next step is late is re-driven."""
    result = SweepResult()
    for batch_id in past_deadline(flow, now):
        try:
            if expire(flow, flow.model._default_manager.get(pk=batch_id), now):
                result.expired.append(batch_id)
        except Exception:  # noqa: BLE001 - one broken batch must not stop the sweep; alerted with its traceback
            alert(RECOVERY_FAILED, Subject(flow.kind, batch_id), exc_info=True, kind=flow.kind, id=batch_id)
    for batch_id in overdue(flow, now, timedelta(seconds=settings.PGP_OVERDUE_GRACE_SECONDS)):
        if batch_id in result.expired:
            continue
        try:
            if schedule_step(flow.model, batch_id, flow.advance_task, 0):
                result.redriven.append(batch_id)
        except Exception:  # noqa: BLE001 - likewise
            alert(RECOVERY_FAILED, Subject(flow.kind, batch_id), exc_info=True, kind=flow.kind, id=batch_id)
    return result


def past_deadline(flow: ExchangeFundedFlow[B], now: datetime) -> list[int]:
    rows = flow.model._default_manager.filter(status__in=DEADLINE_STATUSES, deadline_at__lt=now)
    return list(rows.values_list("id", flat=True))


def overdue(flow: ExchangeFundedFlow[B], now: datetime, grace: timedelta) -> list[int]:
    """Open batches whose scheduled next step is late (a lost message, a dead worker)."""
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    return list(flow.model._default_manager.filter(late, status__in=OPEN_STATUSES).values_list("id", flat=True))


def expire(flow: ExchangeFundedFlow[B], batch: B, now: datetime) -> bool:
    """Past its deadline: cancelled if nothing can have been sent (rows released), else held for
    review; alerted either way. A batch whose funds are at the exchange goes to review too, and
    an operator resumes it once the exchange moves again. A payout waiting below the minimum is
    only alerted (throttled): it can still be merged with the client's later payments. True if
    the batch was moved on."""
    age = int((now - batch.created_at).total_seconds())
    if batch.status == BatchStatus.WAITING_MINIMUM:
        alert(PAYOUT_BELOW_MINIMUM_OVERDUE, Subject(flow.kind, batch.pk), kind=flow.kind, id=batch.pk, age=f"{age}s")
        return False
    alert(
        BATCH_DEADLINE_PASSED,
        Subject(flow.kind, batch.pk),
        kind=flow.kind,
        id=batch.pk,
        state=batch.status,
        exchange_status=batch.exchange_status or "-",
        age=f"{age}s",
        last_error=batch.last_error or "-",
    )
    reason = f"deadline passed in state {batch.status} after {age}s; last error: {batch.last_error or '-'}"
    if batch.status == BatchStatus.EXCHANGING:
        reason = (
            f"deadline passed after {age}s with the exchange still {batch.exchange_status or 'unknown'!r}; "
            "funds are at the exchange: follow it up there, then resume the batch"
        )
    if cancel_unfunded(flow, batch.pk, reason=reason).status != BatchStatus.CANCELLED:
        to_review(flow, batch, BatchStatus.FAILED, reason)
    return True
