"""A circuit breaker and call meter per outside service, kept in the database so every worker
sees the same state (OutsideServiceHealth).

- closed: calls go through; `threshold` failures in a row open it.
- open: `allows_call` says no until `cooldown` has passed since it opened...
- half-open: ...then yes to one caller at a time (a probe, claimed by a compare-and-set; a probe
  that never reports back frees its claim after another cool-down). Any call that answers closes
  the breaker; a failure while open re-opens it from now.

Failures are what says nothing about the request: the service was down, slow, rate-limiting,
refused our key or answered what it does not document. A refusal is an answer, so it counts as
a success here.
"""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import OutsideServiceHealth


class CallOutcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"
    BAD_RESPONSE = "bad_response"

    @property
    def is_failure(self) -> bool:
        return self in (CallOutcome.UNAVAILABLE, CallOutcome.BAD_RESPONSE)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cooled down: the next call is a probe


@dataclass(frozen=True)
class RecordedCall:
    opened: bool  # this failure opened (or re-opened) the breaker


def _ensure(name: str) -> None:
    OutsideServiceHealth.objects.bulk_create([OutsideServiceHealth(name=name)], ignore_conflicts=True)


def record_call(name: str, outcome: CallOutcome, seconds: float, *, threshold: int, error: str = "") -> RecordedCall:
    """Count one call and move the breaker by its outcome."""
    _ensure(name)
    now = timezone.now()
    with transaction.atomic():
        health = OutsideServiceHealth.objects.select_for_update().get(name=name)
        setattr(health, f"calls_{outcome.value}", getattr(health, f"calls_{outcome.value}") + 1)
        health.call_seconds += max(0.0, seconds)
        opened = False
        if outcome.is_failure:
            health.consecutive_failures += 1
            health.last_failure, health.last_failure_at = error[:500], now
            if health.consecutive_failures >= threshold:
                opened = health.opened_at is None or health.probe_claimed_at is not None
                health.opened_at, health.probe_claimed_at = now, None
        else:
            health.consecutive_failures, health.opened_at, health.probe_claimed_at = 0, None, None
            health.last_success_at = now
        health.save()
    return RecordedCall(opened=opened)


def breaker_state(name: str, *, cooldown: float) -> BreakerState:
    opened_at = OutsideServiceHealth.objects.filter(name=name).values_list("opened_at", flat=True).first()
    if opened_at is None:
        return BreakerState.CLOSED
    if timezone.now() < opened_at + timedelta(seconds=cooldown):
        return BreakerState.OPEN
    return BreakerState.HALF_OPEN


def allows_call(name: str, *, cooldown: float) -> bool:
    """Whether a caller that may choose another service should call this one now. Closed: yes.
    Open: no. Half-open: yes to exactly one caller, which becomes the probe."""
    row = OutsideServiceHealth.objects.filter(name=name).values("opened_at").first()
    if row is None or row["opened_at"] is None:
        return True
    now = timezone.now()
    if now < row["opened_at"] + timedelta(seconds=cooldown):
        return False
    claimed = (
        OutsideServiceHealth.objects.filter(name=name, opened_at=row["opened_at"])
        .filter(Q(probe_claimed_at__isnull=True) | Q(probe_claimed_at__lt=now - timedelta(seconds=cooldown)))
        .update(probe_claimed_at=now, consecutive_failures=F("consecutive_failures"))
    )
    return claimed == 1


def service_health(names: list[str]) -> dict[str, OutsideServiceHealth]:
    """Each named service's row; a service never called yet gets a blank one (not saved)."""
    rows = {row.name: row for row in OutsideServiceHealth.objects.filter(name__in=names)}
    return {name: rows.get(name) or OutsideServiceHealth(name=name) for name in names}
