"""The payments app's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

LATE_PAYMENT = Alert(
    "late_payment",
    Severity.WARNING,
    "A payment finished after NOWPayments had said expired or failed; it was routed.",
    "Nothing, unless the client disputes it.",
)
PARTIAL_PAYMENT = Alert(
    "partial_payment",
    Severity.ERROR,
    "A payment was partially paid; it is held.",
    "**Accept the amount actually paid** (credited in proportion), or leave it held.",
)
PAYMENT_REFUNDED = Alert(
    "payment_refunded",
    Severity.CRITICAL,
    "NOWPayments refunded a payment we had routed; its row is held (and never claimed by a payout), "
    "or its instant payout stopped if nothing was sent; the line says which.",
    "If its value had already left, reconcile by hand.",
)
FINISHED_AFTER_PARTIAL_ACCEPTANCE = Alert(
    "finished_after_partial_acceptance",
    Severity.ERROR,
    "A payment an operator had accepted in part then finished; it is held, not credited twice.",
    "Credit the rest by hand if the payer completed it.",
)
REFERENCE_PRICE_STALE = Alert(
    "reference_price_stale",
    Severity.ERROR,
    "The exchange provider's ETH price could not be refreshed and the one held is older than "
    "`PGP_REFERENCE_PRICE_MAX_AGE_SECONDS` (or there is none): IPN outcomes are not checked against "
    "their invoices meanwhile (instant payouts are still quoted before sending).",
    "Check the provider's API (key, reachability); it clears itself at the next successful refresh.",
    Repeat.PER_SUBJECT,
)
PAYMENTS_ALERTS = (
    LATE_PAYMENT,
    PARTIAL_PAYMENT,
    PAYMENT_REFUNDED,
    FINISHED_AFTER_PARTIAL_ACCEPTANCE,
    REFERENCE_PRICE_STALE,
)
