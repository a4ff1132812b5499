"""This app's side of payments' instant-payout seam: open a payout for a finished instant
payment, and stop it when NOWPayments refunds the payment before anything was sent."""

from decimal import Decimal

from django.db import transaction

from payments.models import Client, Payment
from pgp_project.operations.state_machine import transition

from .client_payouts import PAYOUT_FLOW, open_instant_payout
from .exchange_batches.operator import cancel_unfunded
from .exchange_batches.states import BatchStatus
from .exchange_batches.transitions import to_review
from .locking import lock_batches
from .models import PAYOUT_MACHINE, HostPaymentStatus, PayoutBatch

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
        reason = (
            f"payment #{payment.provider_payment_id} was refunded by NOWPayments; nothing was sent: do not pay it out"
        )
        with transaction.atomic():
            # The part first, then the payout it was merged into (always the later, larger id).
            (part,) = lock_batches(PayoutBatch, [batch.pk])
            paying = lock_batches(PayoutBatch, [part.merged_into_id])[0] if part.merged_into_id else part
            signed = paying.host_payment is not None and paying.host_payment.status != HostPaymentStatus.CREATED
            if paying.status not in NOTHING_SENT or signed:
                return f"its payout #{paying.pk} is {paying.status}: money may have left; reconcile by hand"
            if paying is part:
                to_review(PAYOUT_FLOW, part, BatchStatus.FAILED, reason)
                return f"its payout #{part.pk} was stopped before anything was sent and is held for review"
            transition(
                PAYOUT_MACHINE,
                part.pk,
                from_status=BatchStatus.MERGED,
                to_status=BatchStatus.FAILED,
                reason=reason,
                updates={"merged_into": None, "review_reason": reason},
            )
        # The other parts go back to waiting, to be merged again without the refunded one.
        cancel_unfunded(PAYOUT_FLOW, paying.pk, reason=f"part #{part.pk} was refunded: {reason}")
        return f"its part of merged payout #{paying.pk} was stopped; the other parts wait to be merged again"
