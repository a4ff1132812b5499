"""What in this app waits for a person right now, for /health/'s needs_attention (and, later, the
operators' queue): batches in review, payouts awaiting approval or below the minimum, and host
payments waiting for balance or fees, or past their deadline."""

from django.db.models import Count
from django.utils import timezone

from .exchange_batches.flow import exchange_funded_flows
from .exchange_batches.states import REVIEW_STATUSES, BatchStatus
from .models import IN_FLIGHT, HostPayment, HostPaymentStatus, PayoutBatch


def payouts_needing_attention() -> dict[str, int]:
    counts = {
        f"{flow.kind}_in_review": flow.model._default_manager.filter(status__in=REVIEW_STATUSES).count()
        for flow in exchange_funded_flows()
    }
    by_status = dict(
        PayoutBatch.objects.filter(status__in=[BatchStatus.AWAITING_APPROVAL, BatchStatus.WAITING_MINIMUM])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    counts["payout_awaiting_approval"] = by_status.get(BatchStatus.AWAITING_APPROVAL, 0)
    counts["payout_below_minimum"] = by_status.get(BatchStatus.WAITING_MINIMUM, 0)
    waiting = dict(
        HostPayment.objects.filter(status=HostPaymentStatus.CREATED)
        .exclude(waiting_for="")
        .values_list("waiting_for")
        .annotate(n=Count("id"))
        .values_list("waiting_for", "n")
    )
    counts["host_payment_waiting_for_balance"] = waiting.get("balance", 0)
    counts["host_payment_waiting_for_fee_cap"] = waiting.get("fee_cap", 0)
    counts["host_payment_overdue"] = HostPayment.objects.filter(
        status__in=[HostPaymentStatus.CREATED, *IN_FLIGHT], deadline_at__lt=timezone.now()
    ).count()
    return counts
