"""What in this app waits for a person: payments held for review, and accumulation rows held."""

from .models import AccumulationStatus, Payment, PayoutAccumulation, RoutingStatus


def payments_needing_attention() -> dict[str, int]:
    return {
        "payment_held": Payment.objects.filter(routing_status=RoutingStatus.HELD).count(),
        "accumulation_row_held": PayoutAccumulation.objects.filter(status=AccumulationStatus.HELD).count(),
    }
