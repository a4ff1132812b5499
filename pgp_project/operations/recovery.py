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
from batching.models import BatchConversion
from payouts.client_payouts import PAYOUT_FLOW
from payouts.host_payments import ADVANCE_TASK as HOST_PAYMENT_TASK
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch

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
    flow = CONVERSION_FLOW
    for conversion_id in exchange_flow.overdue(flow, now, grace):
        conversion = BatchConversion.objects.get(pk=conversion_id)
        if conversion.deadline_at is not None and conversion.deadline_at < now:
            exchange_flow.expire(flow, conversion, now)
            report.expired_conversions.append(conversion_id)
        elif schedule_step(BatchConversion, conversion_id, flow.advance_task, 0):
            report.redriven_conversions.append(conversion_id)
    for batch_id in exchange_flow.overdue(PAYOUT_FLOW, now, grace):
        batch = PayoutBatch.objects.get(pk=batch_id)
        if batch.deadline_at is not None and batch.deadline_at < now:
            exchange_flow.expire(PAYOUT_FLOW, batch, now)
            report.expired_payouts.append(batch_id)
        elif schedule_step(PayoutBatch, batch_id, PAYOUT_FLOW.advance_task, 0):
            report.redriven_payouts.append(batch_id)
    in_flight = [HostPaymentStatus.CREATED, HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST]
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    for payment_id in HostPayment.objects.filter(late, status__in=in_flight).values_list("id", flat=True):
        if schedule_step(HostPayment, payment_id, HOST_PAYMENT_TASK, 0):
            report.redriven_host_payments.append(payment_id)
    if any(vars(report).values()):
        logger.warning("recovery sweep: %s", report)
    return report
