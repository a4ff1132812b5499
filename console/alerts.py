"""The console's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Severity

RECONCILIATION_DISCREPANCY = Alert(
    "reconciliation_discrepancy",
    Severity.CRITICAL,
    "The reconciliation of a day found a discrepancy between our records and the chain, the exchange "
    "or our own totals; the run is stored and shown in the console, the line gives the counts per "
    "check and the first items.",
    "Open the run (*Operator console -> Reconciliation runs*), then each linked object or transaction, "
    "and settle each item; a discrepancy never clears by itself.",
)
CONSOLE_ALERTS = (RECONCILIATION_DISCREPANCY,)
