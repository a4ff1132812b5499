"""The recovery sweep (Beat, every minute): re-drive what a lost message or a dead worker left
behind, and move anything past its deadline to review with an alert line operators can grep:

    ALERT batch_deadline_passed kind=conversion id=12 state=funding age=21650s last_error=...
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from batching import exchange_flow
from batching.conversion import CONVERSION_FLOW
from batching.states import BatchStatus
from payouts.client_payouts import PAYOUT_FLOW
from payouts.host_payments import ADVANCE_TASK as HOST_PAYMENT_TASK
from payouts.models import HostPayment, HostPaymentStatus

from .scheduling import schedule_step

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    redriven_conversions: list[int] = field(default_factory=list)
    expired_conversions: list[int] = field(default_factory=list)
    redriven_payouts: list[int] = field(default_factory=list)
    expired_payouts: list[int] = field(default_factory=list)
    redriven_host_payments: list[int] = field(default_factory=list)


def run_recovery_sweep() -> SweepReport:
    now = timezone.now()
    grace = timedelta(seconds=settings.PGP_OVERDUE_GRACE_SECONDS)
    report = SweepReport()
    for flow, redriven, expired in (
        (CONVERSION_FLOW, report.redriven_conversions, report.expired_conversions),
        (PAYOUT_FLOW, report.redriven_payouts, report.expired_payouts),
    ):
        for batch_id in exchange_flow.overdue(flow, now, grace):
            try:
                batch = flow.model.objects.get(pk=batch_id)
                past_deadline = batch.deadline_at is not None and batch.deadline_at < now
                # Funds are at ChangeNOW while exchanging: keep following it (an expired batch
                # could never be distributed), and say loudly that it is late.
                if past_deadline and batch.status != BatchStatus.EXCHANGING:
                    exchange_flow.expire(flow, batch, now)
                    expired.append(batch_id)
                    continue
                if past_deadline:
                    logger.error(
                        "ALERT exchange_overdue kind=%s id=%s exchange=%s", flow.kind, batch_id, batch.exchange_id
                    )
                if schedule_step(flow.model, batch_id, flow.advance_task, 0):
                    redriven.append(batch_id)
            except Exception:  # one broken batch must not stop the sweep for the others
                logger.exception("ALERT recovery_failed kind=%s id=%s", flow.kind, batch_id)
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    # Signed or sent: always followed to the end. Not yet signed: only while its batch funds.
    needs_driving = Q(status__in=[HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST]) | Q(
        Q(conversion__status=BatchStatus.FUNDING) | Q(payout_batch__status=BatchStatus.FUNDING),
        status=HostPaymentStatus.CREATED,
    )
    for payment_id in HostPayment.objects.filter(late, needs_driving).values_list("id", flat=True):
        if schedule_step(HostPayment, payment_id, HOST_PAYMENT_TASK, 0):
            report.redriven_host_payments.append(payment_id)
    if any(vars(report).values()):
        logger.warning("recovery sweep: %s", report)
    return report
