"""This app's side of payments' instant-payout seam: open a payout for a finished instant
payment, and stop it when NOWPayments refunds the payment before anything was sent."""

from decimal import Decimal

from django.db import transaction

from payments.models import Client, Payment

from .client_payouts import PAYOUT_FLOW, open_instant_payout
from .exchange_batches.states import BatchStatus
from .exchange_batches.transitions import to_review
from .locking import lock_batch_and_host_payment
from .models import HostPaymentStatus, PayoutBatch

# Nothing can have left for a payout in these states (with its host payment, if any, unsigned).
NOTHING_SENT = (
    BatchStatus.CREATED,
    BatchStatus.AWAITING_APPROVAL,
    BatchStatus.APPROVED,
    BatchStatus.WAITING_MINIMUM,
    BatchStatus.SWAP_CREATED,
    BatchStatus.FUNDING,
)


class InstantPayoutHandler:
    def open(self, payment: Payment, client: Client, fee_percent: Decimal) -> object:
        return open_instant_payout(payment, client, fee_percent)

    def refunded(self, payment: Payment) -> str:
        batch = PayoutBatch.objects.filter(payment=payment).first()
        if batch is None:
            return "it had no payout"
        if batch.merged_into_id is not None:
            batch = PayoutBatch.objects.get(pk=batch.merged_into_id)
        with transaction.atomic():
            locked, host_payment = lock_batch_and_host_payment(PayoutBatch, batch.pk)
            signed = host_payment is not None and host_payment.status != HostPaymentStatus.CREATED
            if locked.status in NOTHING_SENT and not signed:
                to_review(
                    PAYOUT_FLOW,
                    locked,
                    BatchStatus.FAILED,
                    f"payment #{payment.provider_payment_id} was refunded by NOWPayments; nothing was sent: do not "
                    "pay it out (a merged payout must be paid without its part)",
                )
                return f"its payout #{locked.pk} was stopped before anything was sent and is held for review"
        return f"its payout #{batch.pk} is {batch.status}: money may have left; reconcile by hand"
