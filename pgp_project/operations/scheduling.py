"""Scheduling the next step of a state machine without multiplying task chains.

Each flow object (batch, host payment) carries `next_action_at`. A run that wants a follow-up
claims the slot with a compare-and-set; a concurrent duplicate run finds the slot taken and
schedules nothing, so re-drives and redeliveries never fork a second polling chain. A lost
message leaves `next_action_at` in the past, which is what the recovery sweep looks for.
"""

import logging
import random
from datetime import timedelta
from typing import Any, cast

from celery import current_app
from django.conf import settings
from django.db import OperationalError, models, transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from .alerts import ENQUEUE_FAILED, RETRIES_EXHAUSTED, STEP_FAILED, Subject, alert
from .flows import get_flow
from .transient import TransientError

logger = logging.getLogger(__name__)

EARLY_ARRIVAL_TOLERANCE = timedelta(seconds=2)


def schedule_step(model: type[models.Model], pk: int, task_name: str, countdown: float) -> bool:
    """Enqueue `task_name(pk)` after `countdown` seconds, once; True if this call scheduled it."""
    now = timezone.now()
    claimed = (
        model._default_manager.filter(pk=pk)
        .filter(Q(next_action_at__isnull=True) | Q(next_action_at__lte=now + EARLY_ARRIVAL_TOLERANCE))
        .update(next_action_at=now + timedelta(seconds=countdown))
    )
    if claimed:
        enqueue_after_commit(task_name, pk, countdown)
    return bool(claimed)


def enqueue_after_commit(task_name: str, pk: int, countdown: float = 0) -> None:
    """Send by name (apps never import each other's tasks) and only once the caller's
    transaction has committed (reliability rule 1).

    A broker that refuses the message cannot undo what was committed, and must not turn a
    request that recorded money into an error: the failure is logged, and the recovery sweep
    re-drives the object once its next step is overdue."""

    def send() -> None:
        try:
            current_app.send_task(task_name, args=[pk], countdown=max(0.0, countdown))
        except Exception:  # noqa: BLE001 - whatever the broker raised, alerted with its traceback
            alert(ENQUEUE_FAILED, Subject(task_name, pk), exc_info=True, task=task_name, id=pk)

    transaction.on_commit(send)


def retry_countdown(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never below the server's Retry-After and always
    well under the broker visibility timeout (reliability rule 5)."""
    cap = settings.PGP_RETRY_MAX_COUNTDOWN_SECONDS
    backoff = random.uniform(0, min(cap, 2.0 * 2**retries))  # noqa: S311 - jitter, not crypto
    return min(cap, max(backoff, retry_after or 0.0, 1.0))


def note_retry(model: type[models.Model], pk: int, error: Exception, countdown: float) -> None:
    """Record why a step will run again and when, so the admin shows it and the recovery
    sweep does not start a second chain meanwhile."""
    model._default_manager.filter(pk=pk).update(
        last_error=f"{type(error).__name__}: {error}"[:2000],
        attempts=models.F("attempts") + 1,
        next_action_at=timezone.now() + timedelta(seconds=countdown),
    )


# Failures a later retry can cure: an adapter's own, a database lock or connection, the broker.
TRANSIENT_FAILURES = (TransientError, OperationalError, BrokerOperationalError)


def run_flow_step(task: Any, flow_name: str, pk: int) -> None:
    """Body of a flow's Celery task: run the registered flow's next step for `pk`.

    A transient failure retries the task with backoff, recorded on the object; one that outlasts
    the retries is alerted and left to the recovery sweep (the object's deadline bounds it).
    Anything else is handed to the flow's `on_failure`, which puts the object where an operator
    sees it: never an endless re-drive. An object that no longer exists is nothing to do."""
    flow = get_flow(flow_name)
    gone: type[Exception] = cast(Any, flow.model).DoesNotExist  # the flow's own object only
    try:
        flow.advance(pk)
    except gone:
        logger.warning("%s #%s no longer exists; nothing to do", flow_name, pk)
    except TRANSIENT_FAILURES as exc:
        if task.request.retries >= task.max_retries:
            # Still transient: the object keeps its state, and the recovery sweep re-drives it
            # once the grace has passed (its deadline bounds how long); an operator is told.
            note_retry(flow.model, pk, exc, settings.PGP_OVERDUE_GRACE_SECONDS)
            alert(RETRIES_EXHAUSTED, Subject(flow_name, pk), exc_info=True, flow=flow_name, id=pk)
            return
        countdown = retry_countdown(task.request.retries, getattr(exc, "retry_after", None))
        note_retry(flow.model, pk, exc, countdown)
        logger.warning("%s #%s: %s; retry in %.1fs", flow_name, pk, exc, countdown)
        raise task.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        logger.exception("%s #%s: step failed", flow_name, pk)
        _give_up(flow_name, pk, f"{type(exc).__name__}: {exc}")


def _give_up(flow_name: str, pk: int, reason: str) -> None:
    flow = get_flow(flow_name)
    flow.model._default_manager.filter(pk=pk).update(
        last_error=reason[:2000], attempts=models.F("attempts") + 1, next_action_at=None
    )
    alert(STEP_FAILED, Subject(flow_name, pk), flow=flow_name, id=pk, reason=reason)
    flow.on_failure(pk, reason)
