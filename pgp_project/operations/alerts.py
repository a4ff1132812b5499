"""The alert catalogue, and the one way an alert is written.

Each app declares its alerts (name, severity, what happened, what to do, how it repeats) next to
the code that raises them and registers them from its `AppConfig.ready`, as it registers its
flows: the kernel knows no domain app. `alert()` writes one log line, `ALERT <name> key=value ...`
(operators grep for it), with the name, severity, subject and fields as `extra` for structured
log shippers; it refuses an alert that is not in the catalogue, so a line no operator has a
procedure for cannot be written. docs/alerts.md is generated from the catalogue
(`manage.py alert_docs`), and /metrics exports how many lines of each were written
(`pgp_alerts_total`).

A condition that lasts (a wait) is written when it starts and then at most every
PGP_ALERT_REPEAT_SECONDS per subject, never on every poll. Each alert has its own throttle per
subject (a row of AlertThrottle claimed by an upsert), so concurrent workers write one line and
one alert never silences another.
"""

import enum
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from .models import AlertCount, AlertThrottle

logger = logging.getLogger("pgp.alerts")


class Severity(enum.StrEnum):
    # Money may be wrong, or paid twice: a person acts now.
    CRITICAL = "critical"
    # Something stopped and waits for a person.
    ERROR = "error"
    # A wait that may clear by itself; a person acts if it lasts.
    WARNING = "warning"


class Repeat(enum.StrEnum):
    # An event: every occurrence is written (it happens once per subject by its nature).
    EVERY_TIME = "every time"
    # A lasting condition: written when first seen, then at most every PGP_ALERT_REPEAT_SECONDS
    # per subject, across all workers (a database row).
    PER_SUBJECT = "per subject"
    # A lasting condition met outside any transaction we could trust to keep a throttle row (a
    # call that raises right after, rolling the caller's transaction back): at most every
    # PGP_ALERT_REPEAT_SECONDS per subject in each process.
    PER_PROCESS = "per process"


@dataclass(frozen=True)
class Alert:
    name: str
    severity: Severity
    what_happened: str
    what_to_do: str
    repeat: Repeat = Repeat.EVERY_TIME


@dataclass(frozen=True)
class Subject:
    """What an alert is about, for its throttle and the structured log: ("conversion", 12)."""

    type: str
    id: object


class UnknownAlert(LookupError):
    """An alert not in the catalogue: a line no operator has a procedure for."""


_CATALOGUE: dict[str, Alert] = {}
_LEVELS = {Severity.CRITICAL: logging.CRITICAL, Severity.ERROR: logging.ERROR, Severity.WARNING: logging.ERROR}


def register_alerts(*alerts: Alert) -> None:
    """Called from an app's `ready()`; registering the same alert twice is harmless, two
    different alerts under one name is a wiring mistake."""
    for definition in alerts:
        existing = _CATALOGUE.setdefault(definition.name, definition)
        if existing != definition:
            raise RuntimeError(f"alert {definition.name!r} is already registered differently")


def alert_catalogue() -> list[Alert]:
    return sorted(_CATALOGUE.values(), key=lambda definition: definition.name)


def alert(definition: Alert, subject: Subject | None = None, /, *, exc_info: bool = False, **fields: object) -> bool:
    """Write the alert line `ALERT <name> key=value ...` (fields in the order given; `from_`
    writes `from`) unless its throttle says it was written about this subject recently. True if
    it was written.

    Every alert is logged at ERROR or above (CRITICAL for critical ones), so one rule on the log
    level catches them all; `exc_info` adds the traceback being handled."""
    if _CATALOGUE.get(definition.name) != definition:
        raise UnknownAlert(f"alert {definition.name!r} is not in the catalogue; register it from its app")
    if definition.repeat != Repeat.EVERY_TIME and subject is None:
        raise ValueError(f"alert {definition.name!r} repeats {definition.repeat}: it needs a subject")
    if definition.repeat == Repeat.PER_SUBJECT:
        assert subject is not None
        if not _claim_and_count(definition, subject):
            return False
    elif definition.repeat == Repeat.PER_PROCESS:
        assert subject is not None
        if not _PROCESS_THROTTLE.due(definition.name, subject):
            return False
    _write_line(definition, subject, fields, exc_info)
    if definition.repeat != Repeat.PER_SUBJECT:
        _count(definition)
    return True


def alert_counts() -> dict[str, int]:
    """Lines written per alert, ever (0 for one never written): one small query for /metrics.
    A name no longer in the catalogue keeps its count, so a counter never disappears."""
    counts = dict.fromkeys(_CATALOGUE, 0)
    counts.update(AlertCount.objects.values_list("name", "total"))
    return dict(sorted(counts.items()))


def forget_alert(definition: Alert, subject: Subject) -> None:
    """The condition changed (a host payment waits for another thing, say): the next alert of
    this kind about this subject is news again, not held back by the throttle."""
    AlertThrottle.objects.filter(name=definition.name, subject_type=subject.type, subject_id=str(subject.id)).delete()


def prune_alert_throttles() -> int:
    """Drop throttle rows too old to hold anything back (a day at least): they mean no row."""
    horizon = timezone.now() - timedelta(seconds=max(settings.PGP_ALERT_REPEAT_SECONDS, 24 * 3600))
    deleted, _ = AlertThrottle.objects.filter(last_sent_at__lt=horizon).delete()
    return deleted


def _write_line(definition: Alert, subject: Subject | None, fields: dict[str, object], exc_info: bool) -> None:
    # A trailing underscore lets a field be named like a Python keyword: from_=... is from=...
    fields = {key.removesuffix("_"): value for key, value in fields.items()}
    template = " ".join(["ALERT " + definition.name, *(f"{key}=%s" for key in fields)])
    logger.log(
        _LEVELS[definition.severity],
        template,
        *fields.values(),
        exc_info=exc_info,
        extra={
            "alert": definition.name,
            "alert_severity": str(definition.severity),
            "alert_subject_type": subject.type if subject else None,
            "alert_subject_id": str(subject.id) if subject else None,
            "alert_fields": {key: str(value) for key, value in fields.items()},
        },
    )


# The tables of AlertThrottle and AlertCount (Django's default names for the kernel's app label).
# One statement: claim the (alert, subject) throttle if it is free or older than the interval,
# and only then count the line. Two workers racing on one subject serialize on its unique key:
# the second sees the first's fresh stamp and claims nothing, so one line is written and counted.
_CLAIM_AND_COUNT = """
WITH claimed AS (
    INSERT INTO operations_alertthrottle AS throttle (name, subject_type, subject_id, last_sent_at)
    VALUES (%(name)s, %(subject_type)s, %(subject_id)s, %(now)s)
    ON CONFLICT (name, subject_type, subject_id) DO UPDATE SET last_sent_at = EXCLUDED.last_sent_at
    WHERE throttle.last_sent_at < %(stale)s
    RETURNING throttle.name
)
INSERT INTO operations_alertcount AS counted (name, total)
SELECT name, 1 FROM claimed
ON CONFLICT (name) DO UPDATE SET total = counted.total + 1
RETURNING counted.total
"""

_COUNT = """
INSERT INTO operations_alertcount AS counted (name, total) VALUES (%(name)s, 1)
ON CONFLICT (name) DO UPDATE SET total = counted.total + 1
"""


def _claim_and_count(definition: Alert, subject: Subject) -> bool:
    now = timezone.now()
    params: dict[str, str | datetime] = {
        "name": definition.name,
        "subject_type": subject.type,
        "subject_id": str(subject.id),
        "now": now,
        "stale": now - timedelta(seconds=settings.PGP_ALERT_REPEAT_SECONDS),
    }
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_AND_COUNT, params)
        return cursor.fetchone() is not None


def _count(definition: Alert) -> None:
    """Count a line already written. Counting must never stop what raised it (an alert about a
    database outage, say), so a failure is logged and the count skipped; in a savepoint, so it
    cannot spoil the caller's transaction either."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_COUNT, {"name": definition.name})
    except DatabaseError as error:
        logger.warning("alert %s written but not counted: %s", definition.name, error)


class _ProcessThrottle:
    """When this process last wrote each (alert, subject) that repeats per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent_at: dict[tuple[str, str, str], float] = {}

    def due(self, name: str, subject: Subject) -> bool:
        key = (name, subject.type, str(subject.id))
        now = time.monotonic()
        with self._lock:
            sent_at = self._sent_at.get(key)
            if sent_at is not None and now - sent_at < settings.PGP_ALERT_REPEAT_SECONDS:
                return False
            self._sent_at[key] = now
            return True


_PROCESS_THROTTLE = _ProcessThrottle()


# --- the kernel's own alerts ---------------------------------------------------------------------

ENQUEUE_FAILED = Alert(
    "enqueue_failed",
    Severity.ERROR,
    "The broker refused a message after the database committed (Redis down, say).",
    "Restore the broker; the recovery sweep re-drives what was left.",
)
RETRIES_EXHAUSTED = Alert(
    "retries_exhausted",
    Severity.ERROR,
    "A step kept failing transiently (a node or the exchange down) through all its retries.",
    "Restore the outside system; the sweep keeps re-driving it until its deadline.",
)
STEP_FAILED = Alert(
    "step_failed",
    Severity.ERROR,
    "A step failed in a way no retry cures; its object is handed to its flow's failure handling "
    "(a batch goes to review).",
    "Read `last_error`; fix the cause, then cancel or resume the batch.",
)
RECOVERY_FAILED = Alert(
    "recovery_failed",
    Severity.ERROR,
    "The recovery sweep failed for one flow or one object (a database error, say); the others were swept.",
    "Read the traceback: a bug or an outage. The next sweep (every minute) tries again.",
)
KERNEL_ALERTS = (ENQUEUE_FAILED, RETRIES_EXHAUSTED, STEP_FAILED, RECOVERY_FAILED)


# --- the documentation, generated ----------------------------------------------------------------

ALERT_DOCS_PATH = "docs/alerts.md"
_REPEATS = {
    Repeat.EVERY_TIME: "every time",
    Repeat.PER_SUBJECT: "when it starts, then at most every `PGP_ALERT_REPEAT_SECONDS` per subject",
    Repeat.PER_PROCESS: "when it starts, then at most every `PGP_ALERT_REPEAT_SECONDS` per subject in each process",
}


def alert_docs_markdown() -> str:
    """docs/alerts.md, from the catalogue: `manage.py alert_docs` writes it, a test compares."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Alert lines, and what an operator does about each",
        "",
        "<!-- Generated from the alert catalogue by `manage.py alert_docs`; do not edit by hand. -->",
        "",
        "Every alert is one log line, `ALERT <name> key=value ...`, naming its subject (the batch, host",
        "payment, payment or client), its state and why: grep the logs for `ALERT`. Each line is logged at",
        "ERROR (CRITICAL for critical alerts) on the `pgp.alerts` logger, with the alert's name, severity,",
        "subject and fields as structured `extra` (`alert`, `alert_severity`, `alert_subject_type`,",
        "`alert_subject_id`, `alert_fields`). A condition that lasts is written when it starts and then at",
        "most every `PGP_ALERT_REPEAT_SECONDS` (default 30 min) per subject; each alert has its own throttle, so",
        "one never silences another. `/metrics` counts the lines written as `pgp_alerts_total{name=...}`.",
        "`GET /health/` counts everything that needs a person under `needs_attention`. Every operator",
        "action below is an admin action, kept with who and when in the object's history.",
        "",
        "Severities: **critical**, money may be wrong or paid twice, act now; **error**, something",
        "stopped and waits for a person; **warning**, a wait that may clear by itself, act if it lasts.",
        "",
        "| alert | severity | written | what happened | what to do |",
        "|---|---|---|---|---|",
    ]
    for definition in alert_catalogue():
        lines.append(
            f"| `{definition.name}` | {definition.severity} | {_REPEATS[definition.repeat]} "
            f"| {cell(definition.what_happened)} | {cell(definition.what_to_do)} |"
        )
    return "\n".join(lines) + "\n"
