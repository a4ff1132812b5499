"""The payouts app's alerts: exchange-funded batches, host payments and client payouts (the
catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

# --- exchange-funded batches (conversions and payouts) -------------------------------------------

BATCH_REVIEW = Alert(
    "batch_review",
    Severity.ERROR,
    "A batch went to review (failed or refunded); the line and the batch's *review reason* say why "
    "(among them: a conversion whose reported `amountTo` differs from what its `payoutHash` moved into "
    "our hot wallet on chain; nothing is distributed).",
    "Read the reason; if nothing was sent, fix the cause and **Cancel and release rows**; a refunded "
    "one: **Release rows: the refund is back on chain**; an `amountTo` the chain contradicts: settle it "
    "with the exchange, then **Resume a funded batch in review** once its report matches the chain (it "
    "is checked again).",
)
BATCH_REVIEW_REFUSED = Alert(
    "batch_review_refused",
    Severity.ERROR,
    "A step asked to move a batch to review from a state the state machine forbids; the batch is kept as it is.",
    "Read the line and the batch's history: this is a bug.",
)
BATCH_DEADLINE_PASSED = Alert(
    "batch_deadline_passed",
    Severity.ERROR,
    "A batch passed `PGP_BATCH_DEADLINE_SECONDS`: cancelled (rows released) if nothing was sent, else in review.",
    "For one whose funds are at the exchange, follow it up there, then **Resume a funded batch in review**.",
)
PAYOUT_BELOW_MINIMUM_OVERDUE = Alert(
    "payout_below_minimum_overdue",
    Severity.WARNING,
    "An instant payout still waits below the exchange's minimum past its deadline.",
    "Let it wait for the client's next payments, or pay or refund it by hand.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_REQUOTED_REPEATEDLY = Alert(
    "exchange_requoted_repeatedly",
    Severity.WARNING,
    "A batch needed a fresh exchange three times or more (rates expiring faster than "
    "`PGP_RATE_VALIDITY_MARGIN_SECONDS`, say).",
    "Check the exchange's rate validity against the margin.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_VERIFYING = Alert(
    "exchange_verifying",
    Severity.WARNING,
    "The exchange holds our deposit in `verifying`.",
    "Contact the exchange with its id; the batch's deadline sends it to review.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_UNKNOWN_STATUS = Alert(
    "exchange_unknown_status",
    Severity.WARNING,
    "The exchange reports a status we do not know; the batch keeps polling.",
    "Contact the exchange with its id; the batch's deadline sends it to review.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_PAYOUT_UNSEEN = Alert(
    "exchange_payout_unseen",
    Severity.WARNING,
    "A conversion's exchange says `finished`, but our node does not show its `payoutHash` mined and "
    "succeeded; nothing is distributed, it keeps polling until the batch's deadline.",
    "Check the node and the hash on a block explorer; if the exchange never paid, take it up with them "
    "(the deadline sends the batch to review).",
    Repeat.PER_SUBJECT,
)

# --- host payments (on-chain sends from the hot wallet) ------------------------------------------

HOST_PAYMENT_FAILED = Alert(
    "host_payment_failed",
    Severity.ERROR,
    "An on-chain send failed (reverted, or its sending slot taken by another transaction).",
    "**Re-verify a failed payment on chain** (a lagging node can mislead); if the chain proves nothing "
    "was sent (the transaction in its sending slot, in a confirmed block, is another one or reverted), "
    "**Release rows: the chain shows the failed funding sent nothing**.",
)
HOST_PAYMENT_MINED_AFTER_RELEASE = Alert(
    "host_payment_mined_after_release",
    Severity.CRITICAL,
    "A re-verified payment was mined after all, but its batch had released its rows.",
    "The value may be paid twice: reconcile at once.",
)
HOT_WALLET_INSUFFICIENT = Alert(
    "hot_wallet_insufficient",
    Severity.ERROR,
    "A send waits for hot-wallet balance on its chain (the amount, plus the network fee in the chain's native asset).",
    "Top up the hot wallet; it goes out by itself.",
    Repeat.PER_SUBJECT,
)
HOST_PAYMENT_FEE_CAP = Alert(
    "host_payment_fee_cap",
    Severity.WARNING,
    "A send waits for network fees under its chain's fee cap (`PGP_CHAINS`; the default chain's `ETH_MAX_FEE_GWEI`).",
    "Wait, or raise the cap.",
    Repeat.PER_SUBJECT,
)
HOST_PAYMENT_STUCK = Alert(
    "host_payment_stuck",
    Severity.WARNING,
    "A broadcast send is unmined and a higher-fee replacement would pass the cap.",
    "Raise the chain's fee cap (`PGP_CHAINS`; the default chain's `ETH_MAX_FEE_GWEI`), or wait for fees to fall.",
    Repeat.PER_SUBJECT,
)
SIGNING_KEY_MISSING = Alert(
    "signing_key_missing",
    Severity.ERROR,
    "No configured key owns the address a payment sends from (a rotated key): it cannot be signed, or "
    "a stuck one cannot be replaced with higher fees.",
    "Put the old key in the chain's previous keys (`PGP_CHAINS` keyring; the default chain's "
    "`HOT_WALLET_PREVIOUS_PRIVATE_KEYS`); it is signed from its own address.",
    Repeat.PER_SUBJECT,
)
HOST_PAYMENT_OVERDUE = Alert(
    "host_payment_overdue",
    Severity.WARNING,
    "A send is still unconfirmed past `PGP_HOST_PAYMENT_DEADLINE_SECONDS`.",
    "Look at its wait reason and last error; its batch's deadline decides the batch.",
    Repeat.PER_SUBJECT,
)

# --- client payouts ------------------------------------------------------------------------------

PAYOUT_CLAIM_FAILED = Alert(
    "payout_claim_failed",
    Severity.ERROR,
    "A database error in one client's payout claim; the other clients were checked.",
    "Read the traceback: a bug or an outage. The next check (every 5 min) tries again.",
)
PAYOUT_WAITING = Alert(
    "payout_waiting",
    Severity.ERROR,
    "A threshold client's converted row alone is over the exchange's maximum for one exchange "
    "(`/v2/exchange/range`): it is never claimed (the client's other rows are paid, a payout taking the "
    "oldest that fit under the maximum, the rest in the next one).",
    "Hold the row and settle it by hand, or pay the client another way.",
    Repeat.PER_SUBJECT,
)

PAYOUTS_ALERTS = (
    BATCH_REVIEW,
    BATCH_REVIEW_REFUSED,
    BATCH_DEADLINE_PASSED,
    PAYOUT_BELOW_MINIMUM_OVERDUE,
    EXCHANGE_REQUOTED_REPEATEDLY,
    EXCHANGE_VERIFYING,
    EXCHANGE_UNKNOWN_STATUS,
    EXCHANGE_PAYOUT_UNSEEN,
    HOST_PAYMENT_FAILED,
    HOST_PAYMENT_MINED_AFTER_RELEASE,
    HOT_WALLET_INSUFFICIENT,
    HOST_PAYMENT_FEE_CAP,
    HOST_PAYMENT_STUCK,
    SIGNING_KEY_MISSING,
    HOST_PAYMENT_OVERDUE,
    PAYOUT_CLAIM_FAILED,
    PAYOUT_WAITING,
)
