from .exchange_batch import ExchangeFundedBatch
from .host_payment import (
    HOST_PAYMENT_MACHINE,
    IN_FLIGHT,
    HostPayment,
    HostPaymentCandidate,
    HostPaymentStatus,
    HostPaymentWait,
)
from .payout_batch import PAYOUT_MACHINE, PayoutBatch, PayoutKind

__all__ = [
    "HOST_PAYMENT_MACHINE",
    "IN_FLIGHT",
    "PAYOUT_MACHINE",
    "ExchangeFundedBatch",
    "HostPayment",
    "HostPaymentCandidate",
    "HostPaymentStatus",
    "HostPaymentWait",
    "PayoutBatch",
    "PayoutKind",
]
