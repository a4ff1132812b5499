"""The two-person rule for money controls: a change of a guarded field (a client's wallet, a fee,
a threshold, a runtime limit) is only requested by one staff member, and takes effect when a
second one confirms it.

    change = request_change(Client, client.pk, {"wallet_address": new}, user=alice)
    confirm_change(change.pk, bob)   # applied; alice herself is refused

The kernel knows no domain: each app registers which fields of which model are guarded, and the
permission that requests a change of each, from its `AppConfig.ready` (`register_guarded_fields`).

Confirming applies under a row lock of the subject, only if every field still holds the value
recorded as old when it was requested (else the change is stale and nothing is written), and only
if the row with the new values passes the model's validation and constraints (`full_clean`). A
change whose row was deleted meanwhile is stale too.
Each request, confirmation, rejection and supersession is an audit event on the subject, with the
old -> new values in its reason.
"""

import copy
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .attention import AttentionItem, admin_action_url, admin_change_url, queryset_source
from .models import PendingChange, PendingChangeStatus
from .state_machine import record_event

CONFIRM_PERMISSION = "operations.confirm_change"


@dataclass(frozen=True)
class GuardedModel:
    subject: str  # the subject name in the audit trail: "client", "runtime_settings"
    model: type[models.Model]
    fields: Mapping[str, str]  # field name -> the permission that may request a change of it
    # Which rows are guarded (None: every row); judged on the stored row, never on the edited one.
    applies_to: Callable[[Any], bool] | None = None

    def guards(self, obj: models.Model | None) -> bool:
        """Whether this row's guarded fields need a second person (no row yet: only if every row does)."""
        if self.applies_to is None:
            return True
        return obj is not None and obj.pk is not None and self.applies_to(obj)

    def fields_of(self, obj: models.Model | None) -> Mapping[str, str]:
        """The guarded fields of this row: all of them, or none when the row is not guarded."""
        return self.fields if self.guards(obj) else {}

    # Virtual fields: names in `fields` that are no column of the row, with how each is read and written.
    virtual: Mapping[str, "VirtualField"] = dataclasses.field(default_factory=dict)
    confirm_check: "ConfirmCheck | None" = None
    # Runs in the confirming transaction once the change is applied (an app writes its outbox
    # event there: it commits with the change or not at all).
    on_applied: "OnApplied | None" = None


_BY_MODEL: dict[type[models.Model], GuardedModel] = {}
# Who else stands behind a request made under an account: an API key's changes are requested by
# the key's own user, and the person who minted the key stands behind them too (registered by the
# app that owns such accounts; the kernel knows none).
_PEOPLE_BEHIND_ACCOUNT: list[Callable[[int], set[int]]] = []


def register_people_behind_account(resolver: Callable[[int], set[int]]) -> None:
    if resolver not in _PEOPLE_BEHIND_ACCOUNT:
        _PEOPLE_BEHIND_ACCOUNT.append(resolver)


def people_behind(user_id: int | None) -> set[int]:
    """The account itself and every person standing behind it (the creator of an API key)."""
    if user_id is None:
        return set()
    return {user_id}.union(*(resolver(user_id) for resolver in _PEOPLE_BEHIND_ACCOUNT))


_BY_SUBJECT: dict[str, GuardedModel] = {}


def register_guarded_fields(
    subject: str,
    model: type[models.Model],
    fields: Mapping[str, str],
    *,
    applies_to: Callable[[Any], bool] | None = None,
    virtual: "Mapping[str, VirtualField] | None" = None,
    confirm_check: "ConfirmCheck | None" = None,
    on_applied: "OnApplied | None" = None,
) -> None:
    """Called once per model from its app's `ready()`; each field must be a concrete field, or a
    virtual one (see `VirtualField`). `applies_to` limits the guard to some rows (e.g. only the
    periodic tasks of money jobs). `confirm_check` may refuse a confirmer beyond the kernel's own
    rule (the requester never confirms)."""
    virtual = dict(virtual or {})
    for name in fields:
        if name not in virtual:
            model._meta.get_field(name)  # a typo fails at start-up, not at the first request
    existing = _BY_SUBJECT.get(subject)
    if existing is not None and existing.model is not model:
        raise RuntimeError(f"guarded subject {subject!r} is already registered for {existing.model.__name__}")
    if set(virtual) - set(fields):
        raise RuntimeError(f"virtual fields {sorted(set(virtual) - set(fields))} need their permission in `fields`")
    guarded = GuardedModel(
        subject=subject,
        model=model,
        fields=dict(fields),
        applies_to=applies_to,
        virtual=virtual,
        confirm_check=confirm_check,
        on_applied=on_applied,
    )
    _BY_MODEL[model] = guarded
    _BY_SUBJECT[subject] = guarded


def guarded_model(model: type[models.Model]) -> GuardedModel | None:
    return _BY_MODEL.get(model)


def guarded_subject(subject: str) -> GuardedModel:
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        raise LookupError(f"no guarded fields registered as {subject!r}; is its app installed?") from None


def request_permissions() -> set[str]:
    """Every permission that may request some guarded change."""
    return {permission for guarded in _BY_SUBJECT.values() for permission in guarded.fields.values()}


def _pending_change_item(change: PendingChange) -> AttentionItem:
    return AttentionItem(
        kind="change_awaiting_confirmation",
        title=f"change #{change.pk} of {change.subject_type} #{change.subject_id}",
        url=admin_change_url(change),
        since=change.requested_at,
        reason=f"requested by {change.requested_by}: {describe(change.changes)}"
        + (f"; reason: {change.reason}" if change.reason else ""),
        last_error="",
        action_label="Confirm or reject (a second staff member)",
        action_url=admin_action_url(change),
    )


# The operators' queue and /health/ read the same rows: changes waiting for a second person.
PENDING_CHANGES_SOURCE = queryset_source(
    "change_awaiting_confirmation",
    "Changes awaiting a second staff member",
    lambda: PendingChange.objects.filter(status=PendingChangeStatus.PENDING).select_related("requested_by"),
    _pending_change_item,
    newest_first=("-requested_at", "-id"),
    since_field="requested_at",
)


class ChangeNotPending(Exception):
    """The change was already decided (applied, rejected, superseded or stale)."""


class SelfConfirmationRefused(PermissionDenied):
    """The person who requested a change cannot confirm it."""


def as_text(value: Any) -> str | None:
    """A field value as stored in `PendingChange.changes` (JSON: a string, or null)."""
    return None if value is None else str(value)


def describe(changes: Mapping[str, Mapping[str, str | None]]) -> str:
    """field: 'old' -> 'new'; ... (the reason text of every audit event of a change)."""
    return "; ".join(f"{name}: {values['old']!r} -> {values['new']!r}" for name, values in changes.items())


def _field(model: type[models.Model], name: str) -> Any:
    return model._meta.get_field(name)


def _attname(model: type[models.Model], name: str) -> str:
    """Where the value lives on the row: a foreign key's id (`interval_id`), else the field itself."""
    return str(_field(model, name).attname)


def _as_stored(value: Any) -> Any:
    """A foreign key is requested (and recorded) as the id it points to."""
    return value.pk if isinstance(value, models.Model) else value


def _lock_guarded_row(guarded: GuardedModel, pk: int) -> models.Model:
    subject = guarded.model._default_manager.select_for_update().get(pk=pk)
    if not guarded.guards(subject):
        raise ValueError(f"{guarded.model.__name__} #{pk} is not guarded: it is changed directly")
    return subject


def _same(field: Any, a: Any, b: Any) -> bool:
    return bool(field.to_python(a) == field.to_python(b))


def _normalised(field: Any, value: Any) -> Any:
    value = field.to_python(value)
    if isinstance(value, Decimal) and getattr(field, "decimal_places", None) is not None:
        value = value.quantize(Decimal(1).scaleb(-field.decimal_places))
    return value


def request_change(
    model: type[models.Model], pk: int, new_values: Mapping[str, Any], *, user: Any, reason: str = ""
) -> PendingChange | None:
    """Record a requested change of guarded fields of one row; nothing of the row is written.
    Returns None when every value is already the stored one. Raises PermissionDenied when the
    user lacks the permission of a field, ValidationError when the row with the new values would
    not be valid. A pending change of the same row whose fields this one all changes again is
    superseded."""
    guarded = guarded_model(model)
    if guarded is None:
        raise LookupError(f"{model.__name__} has no guarded fields")
    unknown = set(new_values) - set(guarded.fields)
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not guarded fields of {model.__name__}")
    refused = sorted(name for name in new_values if not user.has_perm(guarded.fields[name]))
    if refused:
        raise PermissionDenied(
            f"{user} may not request a change of {', '.join(refused)} "
            f"(needs {', '.join(sorted({guarded.fields[name] for name in refused}))})"
        )
    with transaction.atomic():
        subject = _lock_guarded_row(guarded, pk)
        candidate = copy.copy(subject)
        changes: dict[str, dict[str, str | None]] = {}
        changes.update(_virtual_changes(guarded, subject, new_values))
        for name, value in _concrete(guarded, new_values).items():
            field = _field(model, name)
            value = _as_stored(value)
            old = field.value_from_object(subject)
            if _same(field, old, value):
                continue
            setattr(candidate, _attname(model, name), field.to_python(value))
            changes[name] = {"old": as_text(old), "new": None}
        if not changes:
            return None
        changes.update(_witnesses(guarded, subject))
        candidate.full_clean()  # refuse a change that could never be applied
        for name in _concrete(guarded, changes):
            changes[name]["new"] = as_text(_normalised(_field(model, name), getattr(candidate, _attname(model, name))))
        now = timezone.now()
        change = PendingChange.objects.create(
            subject_type=guarded.subject,
            subject_id=pk,
            changes=changes,
            requested_by=user,
            requested_at=now,
            reason=reason,
        )
        record_event(
            guarded.subject,
            pk,
            action="change_requested",
            from_status="",
            to_status=PendingChangeStatus.PENDING,
            actor=user,
            reason=f"change #{change.pk} requested, awaiting confirmation by a second staff member: "
            f"{describe(changes)}" + (f"; reason: {reason}" if reason else ""),
        )
        replaced = PendingChange.objects.select_for_update().filter(
            subject_type=guarded.subject, subject_id=pk, status=PendingChangeStatus.PENDING
        )
        for earlier in replaced.exclude(pk=change.pk):
            if set(earlier.changes) <= set(changes):
                _decide(earlier, PendingChangeStatus.SUPERSEDED, user, f"superseded by change #{change.pk}")
    return change


def confirm_change(change_id: int, user: Any) -> PendingChange:
    """A second staff member confirms a pending change: it is applied (status applied), or, if a
    field no longer holds the value recorded as old or the row would no longer be valid, it is
    not applied (status stale). The requester cannot confirm their own change."""
    if not user.has_perm(CONFIRM_PERMISSION):
        raise PermissionDenied(f"{user} may not confirm changes (needs {CONFIRM_PERMISSION})")
    with transaction.atomic():
        # The subject first, then the change: the order request_change takes them in.
        found = PendingChange.objects.get(pk=change_id)
        guarded = guarded_subject(found.subject_type)
        subject = guarded.model._default_manager.select_for_update().filter(pk=found.subject_id).first()
        change = PendingChange.objects.select_for_update().get(pk=change_id)
        if change.status != PendingChangeStatus.PENDING:
            raise ChangeNotPending(f"change #{change.pk} is {change.status}, not pending")
        if user.pk in people_behind(change.requested_by_id):
            raise SelfConfirmationRefused(
                f"change #{change.pk} was requested by {user}: a second staff member must confirm it"
            )
        if subject is None:
            # Deleted since the request: nothing to apply, and left pending it would wait forever.
            return _decide(change, PendingChangeStatus.STALE, user, "not applied: its subject no longer exists")
        _check_confirmer(guarded, subject, change, user)
        moved = _moved_virtual(guarded, subject, change.changes) + [
            f"{name} is now {as_text(_field(guarded.model, name).value_from_object(subject))!r}"
            for name, values in _concrete(guarded, change.changes).items()
            if not _same(
                _field(guarded.model, name), _field(guarded.model, name).value_from_object(subject), values["old"]
            )
        ]
        if moved:
            return _decide(
                change,
                PendingChangeStatus.STALE,
                user,
                "not applied: changed since the request (" + "; ".join(moved) + ")",
            )
        for name, values in _concrete(guarded, change.changes).items():
            setattr(subject, _attname(guarded.model, name), _field(guarded.model, name).to_python(values["new"]))
        try:
            subject.full_clean()
            _write_virtual(guarded, subject, change.changes)
        except ValidationError as exc:
            return _decide(
                change, PendingChangeStatus.STALE, user, f"not applied: no longer valid ({'; '.join(exc.messages)})"
            )
        updated = list(_concrete(guarded, change.changes))
        # The row's auto_now stamps move too (updated_at; a periodic task's date_changed, which Beat reads).
        updated.extend(field.name for field in guarded.model._meta.concrete_fields if getattr(field, "auto_now", False))
        subject.save(update_fields=updated)
        if guarded.on_applied is not None:
            guarded.on_applied(subject, change)
        return _decide(
            change,
            PendingChangeStatus.APPLIED,
            user,
            f"requested by {change.requested_by} at {change.requested_at:%Y-%m-%d %H:%M:%S %Z}, confirmed by {user}",
        )


def reject_change(change_id: int, user: Any, note: str = "") -> PendingChange:
    """A staff member who may confirm changes refuses one (the requester may withdraw their own)."""
    with transaction.atomic():
        change = PendingChange.objects.select_for_update().get(pk=change_id)
        if change.requested_by_id != user.pk and not user.has_perm(CONFIRM_PERMISSION):
            raise PermissionDenied(f"{user} may not reject changes (needs {CONFIRM_PERMISSION})")
        if change.status != PendingChangeStatus.PENDING:
            raise ChangeNotPending(f"change #{change.pk} is {change.status}, not pending")
        who = "withdrawn by its requester" if change.requested_by_id == user.pk else f"rejected by {user}"
        return _decide(change, PendingChangeStatus.REJECTED, user, who + (f": {note}" if note else ""))


_ACTIONS = {
    PendingChangeStatus.APPLIED: "change_confirmed",
    PendingChangeStatus.REJECTED: "change_rejected",
    PendingChangeStatus.SUPERSEDED: "change_superseded",
    PendingChangeStatus.STALE: "change_stale",
}


def _decide(change: PendingChange, status: str, user: Any, note: str) -> PendingChange:
    """Close a pending change (caller holds its row lock) and record it on the subject."""
    change.status = status
    change.decided_by = user
    change.decided_at = timezone.now()
    change.decision_note = note
    change.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    record_event(
        change.subject_type,
        change.subject_id,
        action=_ACTIONS[PendingChangeStatus(status)],
        from_status=PendingChangeStatus.PENDING,
        to_status=status,
        actor=user,
        reason=f"change #{change.pk} {status}: {describe(change.changes)}; {note}",
    )
    return change


# --- virtual fields -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VirtualField:
    """A guarded value that is no column of the row (a user's permissions, the groups it is in),
    kept in a change as text (e.g. sorted, comma-joined natural keys) and compared as text.
    `write` runs on confirmation under the subject's row lock; it raises ValidationError when
    the value can no longer be applied (the change is then stale, and nothing is written).

    Without `write` it is a witness: what a confirmer relies on without it being changed (who
    knows an account's credentials, who is in a group). It is recorded, old -> same, with every
    change of the row, and the change is stale if it moved by confirmation; nothing writes it."""

    read: Callable[[Any], str | None]
    write: Callable[[Any, str | None], None] | None = None


# Called on confirmation under the subject's row lock, before anything is applied: raises
# PermissionDenied when this person may not confirm this change of this row.
ConfirmCheck = Callable[[Any, Mapping[str, Mapping[str, str | None]], Any], None]
# Called with the subject (saved with its new values) and the change, in the confirming transaction.
OnApplied = Callable[[Any, PendingChange], None]


def _concrete(guarded: GuardedModel, values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name not in guarded.virtual}


def _virtual_changes(
    guarded: GuardedModel, subject: models.Model, new_values: Mapping[str, Any]
) -> dict[str, dict[str, str | None]]:
    """old -> new of each virtual field that changes."""
    changes: dict[str, dict[str, str | None]] = {}
    for name, virtual in guarded.virtual.items():
        if name in new_values and virtual.write is not None:
            old, new = virtual.read(subject), as_text(new_values[name])
            if old != new:
                changes[name] = {"old": old, "new": new}
    return changes


def _moved_virtual(
    guarded: GuardedModel, subject: models.Model, changes: Mapping[str, Mapping[str, str | None]]
) -> list[str]:
    """The virtual fields that no longer hold the value recorded as old."""
    moved = []
    for name, virtual in guarded.virtual.items():
        if name in changes and (now := virtual.read(subject)) != changes[name]["old"]:
            moved.append(f"{name} is now {now!r}")
    return moved


def _write_virtual(
    guarded: GuardedModel, subject: models.Model, changes: Mapping[str, Mapping[str, str | None]]
) -> None:
    with transaction.atomic():  # one that cannot be written undoes the others
        for name, virtual in guarded.virtual.items():
            if name in changes and virtual.write is not None:
                virtual.write(subject, changes[name]["new"])


def _witnesses(guarded: GuardedModel, subject: models.Model) -> dict[str, dict[str, str | None]]:
    """The witness fields' values now, recorded unchanged (old == new) with a change."""
    witnessed = {}
    for name, virtual in guarded.virtual.items():
        if virtual.write is None:
            value = virtual.read(subject)
            witnessed[name] = {"old": value, "new": value}
    return witnessed


def _check_confirmer(guarded: GuardedModel, subject: models.Model, change: PendingChange, user: Any) -> None:
    if guarded.confirm_check is not None:
        guarded.confirm_check(subject, change.changes, user)
