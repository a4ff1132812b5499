"""The console's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

RECONCILIATION_DISCREPANCY = Alert(
    "reconciliation_discrepancy",
    Severity.CRITICAL,
    "The reconciliation of a day found a discrepancy between our records and the chain, the exchange "
    "or our own totals; the run is stored and shown in the console, the line gives the counts per "
    "check and the first items.",
    "Open the run (*Operator console -> Reconciliation runs*), then each linked object or transaction, "
    "and settle each item; a discrepancy never clears by itself.",
)
HOT_WALLET_LOW_BALANCE = Alert(
    "hot_wallet_low_balance",
    Severity.WARNING,
    "The hot wallet's balance of an asset on a chain is under the floor that chain's configuration "
    "sets (`low_balance` in its `PGP_CHAINS` entry), read by the periodic refresh: payouts sent from "
    "there will soon wait for balance.",
    "Top up the hot wallet on that chain (an operator transfer); the alert stops once the balance is "
    "back over the floor.",
    Repeat.PER_SUBJECT,
)
CONSOLE_ALERTS = (RECONCILIATION_DISCREPANCY, HOT_WALLET_LOW_BALANCE)
