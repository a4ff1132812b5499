"""The webhooks app's alerts (the catalogue: pgp_project.operations.alerts)."""

from pgp_project.operations.alerts import Alert, Severity

WEBHOOK_ENDPOINT_DISABLED = Alert(
    "webhook_endpoint_disabled",
    Severity.ERROR,
    "A webhook endpoint kept failing (every attempt for `PGP_WEBHOOK_DISABLE_AFTER_SECONDS` and at least "
    "`PGP_WEBHOOK_DISABLE_AFTER_FAILURES` attempts in a row) and was disabled; its pending deliveries wait.",
    "Tell the endpoint's owner; once it answers 2xx again, enable it in the admin (its pending deliveries "
    "resume) and **Resend** the failed ones it still needs.",
)
WEBHOOK_DELIVERY_FAILED = Alert(
    "webhook_delivery_failed",
    Severity.WARNING,
    "A webhook delivery was retried for `PGP_WEBHOOK_RETRY_FOR_SECONDS` without a 2xx answer and was given up.",
    "Check the endpoint's delivery log; **Resend** it once the receiver is back.",
)
WEBHOOKS_ALERTS = (WEBHOOK_ENDPOINT_DISABLED, WEBHOOK_DELIVERY_FAILED)
