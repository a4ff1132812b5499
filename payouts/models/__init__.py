from .exchange_batch import ExchangeFundedBatch
from .exchange_quote import ExchangeQuote
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
    "ExchangeQuote",
    "HostPayment",
    "HostPaymentCandidate",
    "HostPaymentStatus",
    "HostPaymentWait",
    "PayoutBatch",
    "PayoutKind",
]
