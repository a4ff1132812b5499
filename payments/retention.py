"""Refused IPNs are kept for a while (hash, size, reason, time) so an operator can see an attack or
a misconfigured sender; then they go. Accepted notifications are part of a payment's record and
are never pruned."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import IpnOutcome, PaymentEvent

PRUNE_REJECTED_IPNS_TASK = "payments.prune_rejected_ipn_events"
REJECTED_OUTCOMES = (IpnOutcome.REJECTED_SIGNATURE, IpnOutcome.REJECTED_PAYLOAD, IpnOutcome.REJECTED_TOO_LARGE)
# Deleted in slices, so a flood of refused requests never becomes one long-locking statement.
PRUNE_SLICE = 5000


def prune_rejected_ipn_events(retention_days: int | None = None) -> int:
    """Delete refused-IPN records older than the retention period; return how many went."""
    days = settings.PGP_REJECTED_IPN_RETENTION_DAYS if retention_days is None else retention_days
    cutoff = timezone.now() - timedelta(days=days)
    expired = PaymentEvent.objects.filter(outcome__in=REJECTED_OUTCOMES, received_at__lt=cutoff, payment__isnull=True)
    deleted = 0
    while True:
        ids = list(expired.order_by("id").values_list("id", flat=True)[:PRUNE_SLICE])
        if not ids:
            return deleted
        deleted += PaymentEvent.objects.filter(id__in=ids).delete()[0]
