"""Alert lines operators grep for (`ALERT <name> key=value ...`), and a throttle for conditions
that last: the line is written when the condition is first seen, then again every
PGP_ALERT_REPEAT_SECONDS while it lasts, never on every poll."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .models import JobHeartbeat

logger = logging.getLogger("pgp.alerts")


def alert(name: str, message: str, *args: object) -> None:
    logger.error("ALERT " + name + " " + message, *args)


def alert_job_condition(job_name: str, name: str, message: str, *args: object) -> bool:
    """Alert about a condition a periodic job finds on each run (its heartbeat row carries the
    throttle): written when first seen, then at most every PGP_ALERT_REPEAT_SECONDS."""
    heartbeat = JobHeartbeat.objects.filter(job_name=job_name).values_list("pk", flat=True).first()
    if heartbeat is None:  # run outside its Beat job (a shell, a test): nothing to throttle by
        alert(name, message, *args)
        return True
    return alert_throttled(JobHeartbeat, heartbeat, "condition_alerted_at", name, message, *args)


def alert_throttled(
    model: type[models.Model], pk: int, stamp_field: str, name: str, message: str, *args: object
) -> bool:
    """Alert about object `pk` unless its `stamp_field` says it was alerted about recently; the
    stamp is claimed with a compare-and-set, so concurrent runs write one line. True if written."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.PGP_ALERT_REPEAT_SECONDS)
    due = Q(**{f"{stamp_field}__isnull": True}) | Q(**{f"{stamp_field}__lt": stale})
    if not model._default_manager.filter(due, pk=pk).update(**{stamp_field: now}):
        return False
    alert(name, message, *args)
    return True
