"""Health checks: database, broker and Beat freshness, each reported on its own."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone
from kombu import Connection

from .attention import needs_attention

BROKER_CHECK_TIMEOUT_SECONDS = 3


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


def check_broker() -> CheckResult:
    url = settings.CELERY_BROKER_URL
    try:
        with Connection(
            url,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            connect_timeout=BROKER_CHECK_TIMEOUT_SECONDS,
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
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


def run_health_checks() -> tuple[bool, dict[str, dict[str, object]]]:
    checks = {"database": check_database(), "broker": check_broker(), "beat": check_beat()}
    report = {name: {"ok": result.ok, **result.detail} for name, result in checks.items()}
    healthy = all(result.ok for result in checks.values())
    if checks["database"].ok:
        report["needs_attention"] = needs_attention()
    return healthy, report
