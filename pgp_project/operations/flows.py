"""The flows (state machines driven by Celery tasks) that the kernel recovers and retries.

The kernel knows no domain: each app registers its flows here from `AppConfig.ready`, and the
recovery sweep and the task wrapper work on whatever is registered.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import models


@dataclass
class SweepResult:
    """What one flow's sweep did: ids re-driven (a step was overdue) and ids past their deadline."""

    redriven: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class RecoverableFlow:
    name: str  # in logs, alert lines and the sweep report: "conversion", "payout", "host_payment"
    model: type[models.Model]  # carries next_action_at, last_error and attempts
    advance: Callable[[int], object]  # runs the next step of one object; safe to run twice
    sweep: Callable[[datetime], SweepResult]  # re-drives what is overdue, expires what is late
    # A step failed in a way no retry cures (or outlasted its retries): put the object where an
    # operator sees it, with the reason. Called outside any transaction; must be safe twice.
    on_failure: Callable[[int, str], None]


_FLOWS: dict[str, RecoverableFlow] = {}


def register_flow(flow: RecoverableFlow) -> None:
    """Called once per flow from its app's `ready()`; two different models under one name is a
    wiring mistake."""
    existing = _FLOWS.get(flow.name)
    if existing is not None and existing.model is not flow.model:
        raise RuntimeError(f"flow {flow.name!r} is already registered for {existing.model.__name__}")
    _FLOWS[flow.name] = flow


def registered_flows() -> list[RecoverableFlow]:
    return list(_FLOWS.values())


def get_flow(name: str) -> RecoverableFlow:
    try:
        return _FLOWS[name]
    except KeyError:
        raise LookupError(f"no flow registered as {name!r}; is its app installed?") from None
