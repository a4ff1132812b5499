"""The batching app's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

CONVERSION_WAITING = Alert(
    "conversion_waiting",
    Severity.WARNING,
    "Pending ETH rows passed the micro-batch threshold but cannot be converted: their ETH is under the "
    "exchange's minimum, or its range could not be asked, or a row alone is over the exchange's maximum "
    "for one exchange (`/v2/exchange/range`; the line says which); they wait, with no deadline of their "
    "own. Rows that only together exceed the maximum are no alert: a conversion takes the oldest that "
    "fit under it, the rest go in the next one.",
    "Raise the threshold above the minimum's value, or check the exchange's API; the next check converts "
    "them by itself. A row alone over the maximum needs a person (hold it and settle it by hand).",
    Repeat.PER_SUBJECT,
)
BATCHING_ALERTS = (CONVERSION_WAITING,)
