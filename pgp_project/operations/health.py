"""Health checks: database, broker and Beat freshness, each reported on its own, all within
PGP_HEALTH_CHECK_TIMEOUT_SECONDS together.

A broker that accepts TCP and never answers would otherwise hold the request (and a web worker
thread) until gunicorn's own timeout: the broker is asked in a thread of its own, waited for only
until the budget runs out, with socket timeouts so the thread itself ends soon after. The database
checks run in the request's thread (its connection) under a statement_timeout of the remaining
budget.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from kombu import Connection

from .attention import needs_attention


@dataclass
class CheckResult:
    ok: bool
    detail: dict[str, object] = field(default_factory=dict)


def check_database() -> CheckResult:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return CheckResult(ok=False, detail={"error": type(exc).__name__})
    return CheckResult(ok=True)


def check_broker(timeout: float = 3.0) -> CheckResult:
    url = settings.CELERY_BROKER_URL
    # Socket timeouts (Redis reads them from the transport options) bound the thread that runs
    # this; the caller's deadline bounds the request.
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "socket_timeout": timeout, "socket_connect_timeout": timeout}
    try:
        with Connection(url, transport_options=options, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            # A connection may open lazily; opening a channel proves the broker answers.
            _ = conn.default_channel
    except Exception as exc:  # noqa: BLE001 - any transport error means "broker down"
        # The type only: a broker URL can carry a password and must not reach the response.
        return CheckResult(ok=False, detail={"error": type(exc).__name__})
    return CheckResult(ok=True, detail={"transport": url.split("://", 1)[0]})


def check_beat() -> CheckResult:
    from .models import JobHeartbeat

    stale_after = timedelta(seconds=settings.PGP_BEAT_STALE_AFTER_SECONDS)
    try:
        beats = list(JobHeartbeat.objects.values("job_name", "last_started_at"))
    except DatabaseError as exc:
        return CheckResult(ok=False, detail={"error": type(exc).__name__})
    now = timezone.now()
    jobs = {b["job_name"]: b["last_started_at"].isoformat() for b in beats}
    latest = max((b["last_started_at"] for b in beats), default=None)
    if latest is None:
        return CheckResult(ok=False, detail={"error": "no periodic job has run yet", "jobs": jobs})
    age = (now - latest).total_seconds()
    return CheckResult(
        ok=now - latest <= stale_after,
        detail={
            "last_run_age_seconds": round(age, 1),
            "stale_after_seconds": int(stale_after.total_seconds()),
            "jobs": jobs,
        },
    )


def _timed_out(budget: float) -> CheckResult:
    return CheckResult(ok=False, detail={"error": f"no answer within {budget:.1f}s"})


@contextmanager
def _statement_deadline(deadline: float) -> Iterator[None]:
    """Each database statement inside may run only until the deadline (statement_timeout)."""
    with transaction.atomic():
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{remaining_ms}ms"])
        yield


def run_health_checks(*, with_attention: bool = True) -> tuple[bool, dict[str, dict[str, object]]]:
    """`with_attention`: also count what needs a person (a dozen COUNTs; only operators see
    them, so a load balancer's probe does not pay for them)."""
    deadline = time.monotonic() + settings.PGP_HEALTH_CHECK_TIMEOUT_SECONDS
    broker_result: list[CheckResult] = []
    budget = settings.PGP_HEALTH_CHECK_TIMEOUT_SECONDS
    # The broker is asked while the database is.
    broker = threading.Thread(
        target=lambda: broker_result.append(check_broker(budget)), daemon=True, name="health-broker"
    )
    broker.start()
    checks: dict[str, CheckResult] = {}
    attention: dict[str, object] | None = None
    try:
        with _statement_deadline(deadline):
            checks["database"] = check_database()
        with _statement_deadline(deadline):
            checks["beat"] = check_beat()
        if with_attention and checks["database"].ok:
            with _statement_deadline(deadline):
                attention = needs_attention()
    except DatabaseError as exc:  # the deadline, or the connection lost between checks
        checks.setdefault("database", CheckResult(ok=False, detail={"error": type(exc).__name__}))
        checks.setdefault("beat", CheckResult(ok=False, detail={"error": type(exc).__name__}))
    broker.join(max(0.0, deadline - time.monotonic()))
    checks["broker"] = broker_result[0] if broker_result else _timed_out(budget)
    report: dict[str, dict[str, object]] = {
        name: {"ok": checks[name].ok, **checks[name].detail} for name in ("database", "broker", "beat")
    }
    healthy = all(result.ok for result in checks.values())
    if attention is not None:
        report["needs_attention"] = attention
    return healthy, report
