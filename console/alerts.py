"""The console's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Severity

RECONCILIATION_DISCREPANCY = Alert(
    "reconciliation_discrepancy",
    Severity.CRITICAL,
    "The reconciliation of a day found a discrepancy between our records and the chain, the exchange "
    "or our own totals; the run is stored and shown in the console, the line gives the counts per "
    "check and the first items.",
    "Open the run in the console (*Reconciliation runs*) and settle each item; a discrepancy is never "
    "cleared by itself.",
)
CONSOLE_ALERTS = (RECONCILIATION_DISCREPANCY,)
