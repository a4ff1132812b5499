"""Alerts an exchange adapter writes. The adapters are no app of their own: the lowest app that
uses the exchange port (payments) registers these with the catalogue."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

EXCHANGE_UNAUTHORIZED = Alert(
    "exchange_unauthorized",
    Severity.ERROR,
    "The exchange answered 401: the API key was refused (bad, or rotated away); the line names the "
    "call, never the key. Batches wait (their steps retry with backoff), none fails for it.",
    "Put the right key in `CHANGENOW_API_KEY_FILE` (read at every call) or `CHANGENOW_API_KEY` and "
    "restart; waiting batches go on by themselves.",
    # Met by a call that raises right after, whose caller's transaction may roll a row back.
    Repeat.PER_PROCESS,
)
EXCHANGE_ALERTS = (EXCHANGE_UNAUTHORIZED,)
