"""Alerts an exchange adapter writes. The adapters are no app of their own: the lowest app that
uses the exchange port (payments) registers these with the catalogue."""

from pgp_project.operations.alerts import Alert, Repeat, Severity

EXCHANGE_UNAUTHORIZED = Alert(
    "exchange_unauthorized",
    Severity.ERROR,
    "The exchange answered 401: the API key was refused (bad, or rotated away); the line names the "
    "call, never the key. Batches wait (their steps retry with backoff), none fails for it.",
    "Put the right key in the variable the provider's PGP_EXCHANGES entry names (`api_key_env`, e.g. "
    "`CHANGENOW_API_KEY`) or the file `<that name>_FILE` (read at every call); waiting batches go on by "
    "themselves.",
    # Met by a call that raises right after, whose caller's transaction may roll a row back.
    Repeat.PER_PROCESS,
)
EXCHANGE_PROVIDER_CIRCUIT_OPEN = Alert(
    "exchange_provider_circuit_open",
    Severity.WARNING,
    "An exchange provider failed PGP_EXCHANGE_BREAKER_FAILURES calls in a row (down, timing out, "
    "rate-limiting, refusing our key or answering nonsense): routing skips it for the cool-down, then "
    "lets one probe through. Batches go through the other providers meanwhile; an exchange already "
    "created with it is still followed there.",
    "Look at the provider's status page and `pgp_exchange_provider_calls_total` by outcome. Nothing to do "
    "while another provider quotes; the breaker closes by itself on the first call that answers.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_NO_PROVIDER_AVAILABLE = Alert(
    "exchange_no_provider_available",
    Severity.CRITICAL,
    "No enabled exchange provider that trades a pair could quote it: each is down, circuit-broken or "
    "refusing its key. Every batch of that pair waits (its step retries with backoff); nothing is sent.",
    "Check the providers' health in /metrics (`pgp_exchange_provider_circuit_open`) and their status "
    "pages; enable another provider in PGP_EXCHANGES if one trades the pair. Waiting batches go on by "
    "themselves once a provider answers.",
    Repeat.PER_SUBJECT,
)
EXCHANGE_ALERTS = (EXCHANGE_UNAUTHORIZED, EXCHANGE_PROVIDER_CIRCUIT_OPEN, EXCHANGE_NO_PROVIDER_AVAILABLE)
