"""The host payments' part of the recovery sweep: a signed or broadcast payment is always
followed to the end; an unsigned one only while its batch is still funding."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.flows import SweepResult
from pgp_project.operations.scheduling import schedule_step

from ..alerts import HOST_PAYMENT_OVERDUE
from ..exchange_batches.flow import exchange_funded_flows
from ..exchange_batches.states import BatchStatus
from ..models import IN_FLIGHT, HostPayment, HostPaymentStatus
from .machine import ADVANCE_HOST_PAYMENT_TASK

UNSETTLED = (HostPaymentStatus.CREATED, *IN_FLIGHT)


def sweep_host_payments(now: datetime) -> SweepResult:
    grace = timedelta(seconds=settings.PGP_OVERDUE_GRACE_SECONDS)
    late = Q(next_action_at__lt=now - grace) | Q(next_action_at__isnull=True, updated_at__lt=now - grace)
    unsigned_while_funding = Q(pk__in=[])
    for flow in exchange_funded_flows():
        funding = flow.model._default_manager.filter(status=BatchStatus.FUNDING, host_payment__isnull=False)
        unsigned_while_funding |= Q(owner_kind=flow.kind, pk__in=funding.values("host_payment_id"))
    needs_driving = Q(status__in=IN_FLIGHT) | (Q(status=HostPaymentStatus.CREATED) & unsigned_while_funding)
    result = SweepResult()
    for host_payment_id in HostPayment.objects.filter(late, needs_driving).values_list("id", flat=True):
        if schedule_step(HostPayment, host_payment_id, ADVANCE_HOST_PAYMENT_TASK, 0):
            result.redriven.append(host_payment_id)
    alert_overdue(now)
    return result


def alert_overdue(now: datetime) -> None:
    """A payment still unconfirmed past its deadline is alerted (throttled): its batch's deadline
    decides the batch, but a stuck send from the hot wallet is worth a person's look either way."""
    for host_payment in HostPayment.objects.filter(status__in=UNSETTLED, deadline_at__lt=now):
        alert(
            HOST_PAYMENT_OVERDUE,
            Subject("host_payment", host_payment.pk),
            host_payment=host_payment.pk,
            state=host_payment.status,
            waiting_for=host_payment.waiting_for or "-",
            tx=host_payment.tx_hash or "-",
            last_error=host_payment.last_error or "-",
        )
