"""State machines: one table of allowed transitions per machine, and one function that applies a
transition as a compare-and-set and writes its audit event in the same transaction.

    changed = transition(MACHINE, pk, from_status="funding", to_status="funded")

Operator actions that change no status (a re-drive, say) are recorded with `record_action`.

An app may ask to hear of its machine's transitions and creations (`register_transition_hook`):
the hook runs inside the same transaction, after the row moved, so what it writes (an outbox
event) commits or rolls back with the transition.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from .models import AuditEvent

SYSTEM = None  # the actor of every transition no person asked for

# hook(pk, from_status, to_status); from_status is "" when the object was created.
TransitionHook = Callable[[int, str, str], None]
_TRANSITION_HOOKS: dict[str, list[TransitionHook]] = {}


def register_transition_hook(subject: str, hook: TransitionHook) -> None:
    """Called from an app's ready(): `hook` runs in the transaction of every transition and
    creation of `subject`'s objects."""
    hooks = _TRANSITION_HOOKS.setdefault(subject, [])
    if hook not in hooks:
        hooks.append(hook)


def _run_hooks(subject: str, pk: int, from_status: str, to_status: str) -> None:
    for hook in _TRANSITION_HOOKS.get(subject, ()):
        hook(pk, from_status, to_status)


class IllegalTransition(Exception):
    """The code asked for a transition the machine's table does not allow: a bug, not bad luck."""


@dataclass(frozen=True)
class StateMachine:
    subject: str  # the name in the audit trail, alert lines and logs
    model: type[models.Model]  # has `status` and `updated_at`
    transitions: Mapping[str, frozenset[str]]  # from -> the statuses it may move to

    def allows(self, from_status: str, to_status: str) -> bool:
        return to_status in self.transitions.get(from_status, frozenset())

    @property
    def terminal(self) -> frozenset[str]:
        """Statuses with no way out."""
        every = set(self.transitions) | {to for targets in self.transitions.values() for to in targets}
        return frozenset(status for status in every if not self.transitions.get(status))


def transition(
    machine: StateMachine,
    pk: int,
    *,
    from_status: str | Iterable[str],
    to_status: str,
    actor: Any = SYSTEM,
    reason: str = "",
    action: str = "transition",
    updates: Mapping[str, Any] | None = None,
    guard: Mapping[str, Any] | None = None,
) -> bool:
    """Move row `pk` from `from_status` (or any of several) to `to_status`, setting `updates` in
    the same statement; True if this call moved it. `guard` adds conditions the row must also
    meet (field lookups). With one expected status it is a single compare-and-set; with several,
    the row is locked first to learn which one it was in."""
    expected = [from_status] if isinstance(from_status, str) else list(from_status)
    for status in expected:
        if not machine.allows(status, to_status):
            raise IllegalTransition(f"{machine.subject}: {status} -> {to_status} is not in the transition table")
    rows = machine.model._default_manager.filter(pk=pk, **(guard or {}))
    with transaction.atomic():
        if len(expected) == 1:
            current = expected[0]
        else:
            found = rows.select_for_update().values_list("status", flat=True).first()
            if found not in expected:
                return False
            current = str(found)
        changed = rows.filter(status=current).update(
            **{"updated_at": timezone.now(), **(updates or {}), "status": to_status}
        )
        if changed:
            _record(machine.subject, pk, action, current, to_status, actor, reason)
            _run_hooks(machine.subject, pk, current, to_status)
    return bool(changed)


def record_created(subject: str, pk: int, status: str, *, actor: Any = SYSTEM, reason: str = "") -> None:
    """The first event of an object's history: it came into being in `status`. Call it in the
    transaction that created the object (its hooks write there)."""
    _record(subject, pk, "created", "", status, actor, reason)
    _run_hooks(subject, pk, "", status)


def record_action(subject: str, pk: int, *, action: str, status: str, actor: Any = SYSTEM, reason: str = "") -> None:
    """An operator action (or a system decision) that changes no status, kept in the history."""
    _record(subject, pk, action, status, status, actor, reason)


def record_event(
    subject: str, pk: int, *, action: str, from_status: str, to_status: str, actor: Any = SYSTEM, reason: str = ""
) -> None:
    """An event of an object without a state machine of its own (a client's requested change,
    say): from and to name the step of what happened to it."""
    _record(subject, pk, action, from_status, to_status, actor, reason)


def _record(subject: str, pk: int, action: str, from_status: str, to_status: str, actor: Any, reason: str) -> None:
    AuditEvent.objects.create(
        subject_type=subject,
        subject_id=pk,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        reason=reason[:4000],
    )


def history(subject: str, pk: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(subject_type=subject, subject_id=pk).select_related("actor"))


def actors_in_history(subject: str, pks: Iterable[int]) -> set[int]:
    """The ids of every person (never the system) who appears in the histories of these objects."""
    return set(
        AuditEvent.objects.filter(subject_type=subject, subject_id__in=list(pks), actor__isnull=False)
        .values_list("actor_id", flat=True)
        .distinct()
    )


def entered_status_at(subject: str, *, status_field: str = "status") -> Subquery:
    """For annotating a queryset of one machine's objects: when each object entered its current
    status, from its latest audit event that moved it there (None when no event says so)."""
    return Subquery(
        AuditEvent.objects.filter(subject_type=subject, subject_id=OuterRef("pk"), to_status=OuterRef(status_field))
        .order_by("-created_at", "-id")
        .values("created_at")[:1]
    )
