"""Administering people is a money control: who may change whose permissions, groups, flags,
password and second factor, and which of those changes need a second person.

The rules, for every change of an account or a group through the admin (or these services):

- nobody changes their own account's permissions, groups, active/staff/superuser flags or TOTP
  devices, nor the permissions of a group they are a member of (that is changing their own);
- nobody grants what they do not hold: a permission, membership of a group whose permissions
  they do not all hold, superuser status (superusers only), or the (re)activation of an account
  holding permissions they do not hold;
- nobody changes, deactivates or deletes a superuser's account but a superuser, nor an account
  holding permissions they do not hold (so nobody strips the people who could stop them);
- a change that adds money power to an account (a permission in PGP_MONEY_PERMISSIONS or
  superuser status, directly, through a group, through a money permission added to a group with
  members or named in a pending membership, or by reactivating or making staff an account that
  holds one) is a `PendingChange`: it applies once a second person, who may grant it too, is not
  its subject and never created it or set its credentials, confirms it;
- such a change holds what its confirmer is shown: the groups of a membership by id with their
  permissions, the members of a group (and who may know their credentials), who may know the
  account's credentials; if any of that moved by confirmation, it is stale;
- revoking is immediate (the safe direction, within the rule above), and so is granting what adds
  no money power;
- setting another person's password takes their account over: only for an account that holds no
  money power and nothing the actor does not hold, and none with a grant waiting for it;
- every change is an audit event on the account ("user") or group ("group"), old -> new.

Sets of permissions are kept as text in changes and events: sorted, comma-joined natural keys
("payouts.approve_payout"); groups in a pending change as "name (#id: permissions)".
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q

from .models import AuditEvent, PendingChange, PendingChangeStatus
from .pending_changes import VirtualField, describe, register_guarded_fields, request_change
from .state_machine import record_event

USER_SUBJECT = "user"
GROUP_SUBJECT = "group"
SUPERUSER = "superuser status"


def join(keys: Iterable[str]) -> str:
    return ",".join(sorted(keys))


def split(text: str | None) -> frozenset[str]:
    return frozenset(key for key in (text or "").split(",") if key)


def money_permissions() -> frozenset[str]:
    return frozenset(settings.PGP_MONEY_PERMISSIONS)


def permission_key(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def permission_keys(permissions: Iterable[Permission]) -> frozenset[str]:
    return frozenset(permission_key(p) for p in permissions)


def permissions_by_key(keys: Iterable[str]) -> list[Permission]:
    """The permissions named by natural key; ValidationError names any that does not exist."""
    keys = set(keys)
    if not keys:
        return []
    query = Q()
    for key in keys:
        app_label, _, codename = key.partition(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(query).select_related("content_type"))
    missing = keys - permission_keys(found)
    if missing:
        raise ValidationError(f"no such permission: {join(missing)}")
    return found


def groups_by_name(names: Iterable[str], *, lock: bool = False) -> list[Group]:
    names = set(names)
    if not names:
        return []
    groups = Group.objects.filter(name__in=names).order_by("pk")
    found = list(groups.select_for_update() if lock else groups)
    missing = names - {group.name for group in found}
    if missing:
        raise ValidationError(f"no such group: {join(missing)}")
    return found


def group_permissions(names: Iterable[str], *, lock: bool = False) -> dict[str, frozenset[str]]:
    """Each named group's permissions. With `lock`, the groups' rows are locked first, so that a
    membership decided on them cannot race a change of their permissions (which locks the row)."""
    groups = groups_by_name(names, lock=lock)
    by_id = _permissions_by_group(groups)
    return {group.name: by_id[group.pk] for group in groups}


def _permissions_by_group(groups: Iterable[Group]) -> dict[int, frozenset[str]]:
    held: dict[int, set[str]] = {group.pk: set() for group in groups}
    rows = Permission.objects.filter(group__in=list(held)).values_list("group", "content_type__app_label", "codename")
    for group_id, app_label, codename in rows:
        held[group_id].add(f"{app_label}.{codename}")
    return {group_id: frozenset(keys) for group_id, keys in held.items()}


# --- groups as a pending membership records them --------------------------------------------------

NO_PERMISSION = "no permission"


@dataclass(frozen=True)
class RecordedGroup:
    """A group in a change of an account's groups: bound by its id (a name can be given to
    another group meanwhile), named for people, with the permissions it granted when the change
    was requested (a membership confirmed after they changed would grant something else)."""

    id: int
    name: str
    permissions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.name} (#{self.id}: {' '.join(sorted(self.permissions)) or NO_PERMISSION})"


# name (#id: app.perm app.perm) -- a name may hold anything but a comma; permissions never hold parentheses
_RECORDED_GROUP = re.compile(r"^(?P<name>.*) \(#(?P<id>\d+): (?P<permissions>[^()]*)\)$")


def groups_text(groups: Iterable[Group]) -> str:
    """A set of groups as a change records it: sorted, comma-joined `RecordedGroup`s."""
    groups = list(groups)
    by_id = _permissions_by_group(groups)
    return join(str(RecordedGroup(group.pk, group.name, by_id[group.pk])) for group in groups)


def parse_groups(text: str | None) -> list[RecordedGroup]:
    recorded = []
    for item in split(text):
        match = _RECORDED_GROUP.match(item)
        if match is None:
            raise ValidationError(f"not a recorded group: {item!r}")
        permissions = match["permissions"]
        recorded.append(
            RecordedGroup(
                id=int(match["id"]),
                name=match["name"],
                permissions=frozenset() if permissions == NO_PERMISSION else frozenset(permissions.split()),
            )
        )
    return recorded


# --- an account's access ------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """What an account may do: its flags, its own permissions and its groups."""

    is_active: bool
    is_staff: bool
    is_superuser: bool
    permissions: frozenset[str]
    groups: frozenset[str]


FLAGS = ("is_active", "is_staff", "is_superuser")


def read_access(user: Any) -> Access:
    return Access(
        is_active=user.is_active,
        is_staff=user.is_staff,
        is_superuser=user.is_superuser,
        permissions=permission_keys(user.user_permissions.select_related("content_type")),
        groups=frozenset(user.groups.values_list("name", flat=True)),
    )


def effective_permissions(access: Access, by_group: Mapping[str, frozenset[str]]) -> frozenset[str]:
    return access.permissions.union(*(by_group.get(name, frozenset()) for name in access.groups))


def money_power(access: Access, by_group: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The money permissions (and superuser status) the account can use in the admin."""
    if not (access.is_active and access.is_staff):
        return frozenset()
    if access.is_superuser:
        return money_permissions() | {SUPERUSER}
    return effective_permissions(access, by_group) & money_permissions()


def unheld(actor: Any, permissions: Iterable[str]) -> list[str]:
    return sorted(name for name in permissions if not actor.has_perm(name))


def _grant_refusals(actor: Any, current: Access, wanted: Access, by_group: Mapping[str, frozenset[str]]) -> list[str]:
    """Why `actor` may not grant what `wanted` adds to `current` (empty: they may)."""
    refusals = []
    missing = unheld(actor, wanted.permissions - current.permissions)
    if missing:
        refusals.append(f"You cannot grant permissions you do not hold: {', '.join(missing)}.")
    for name in sorted(wanted.groups - current.groups):
        missing = unheld(actor, by_group.get(name, frozenset()))
        if missing:
            refusals.append(
                f"You cannot add the group {name!r}: it grants permissions you do not hold ({', '.join(missing)})."
            )
    if wanted.is_superuser and not current.is_superuser and not actor.is_superuser:
        refusals.append("Only a superuser can grant superuser status.")
    reactivated = [flag for flag in ("is_active", "is_staff") if getattr(wanted, flag) and not getattr(current, flag)]
    if reactivated:
        missing = unheld(actor, effective_permissions(wanted, by_group))
        if wanted.is_superuser and not actor.is_superuser:
            missing.append(SUPERUSER)
        if missing:
            refusals.append(
                f"You cannot set {' and '.join(reactivated)}: the account holds what you do not ({', '.join(missing)})."
            )
    return refusals


@dataclass(frozen=True)
class AccessPlan:
    immediate: Access  # written at once: revocations, and grants that add no money power
    pending: dict[str, Any]  # field -> new value, for a PendingChange (empty: nothing waits)


def plan_user_change(
    actor: Any, user: Any, current: Access, wanted: Access, by_group: Mapping[str, frozenset[str]]
) -> AccessPlan:
    """Check a change of an account's access by `actor` and split it into what applies now and
    what waits for a second person. Raises ValidationError (every reason) when it is refused."""
    if wanted == current:
        return AccessPlan(immediate=current, pending={})
    if actor.pk == user.pk:
        raise ValidationError(
            "You cannot change your own account's permissions, groups or active, staff and superuser "
            "status: another administrator must."
        )
    refusal = _account_refusal(actor, user, current, by_group)
    if refusal:
        raise ValidationError(refusal)
    refusals = _grant_refusals(actor, current, wanted, by_group)
    if refusals:
        raise ValidationError(refusals)
    money = money_permissions()
    kept_permissions = current.permissions & wanted.permissions
    added_permissions = wanted.permissions - current.permissions
    added_groups = wanted.groups - current.groups
    immediate = replace(
        current,
        is_superuser=wanted.is_superuser and current.is_superuser,  # a revocation, or unchanged
        permissions=kept_permissions | {name for name in added_permissions if name not in money},
        groups=(current.groups & wanted.groups) | {name for name in added_groups if not by_group[name] & money},
    )
    for flag in ("is_active", "is_staff"):
        raised = getattr(wanted, flag) and not getattr(current, flag)
        # Turning a flag on would let the account use the money power it holds: it waits.
        raised_now: dict[str, Any] = {flag: True}
        if not raised or not money_power(replace(immediate, **raised_now), by_group):
            as_wanted: dict[str, Any] = {flag: getattr(wanted, flag)}
            immediate = replace(immediate, **as_wanted)
    if not money_power(immediate, by_group) <= money_power(current, by_group):  # the rules above, kept honest
        raise RuntimeError(f"an immediate change of {user} would grant money power")
    pending: dict[str, Any] = {
        flag: getattr(wanted, flag) for flag in FLAGS if getattr(immediate, flag) != getattr(wanted, flag)
    }
    if immediate.permissions != wanted.permissions:
        pending["user_permissions"] = join(wanted.permissions)
    if immediate.groups != wanted.groups:
        pending["groups"] = join(wanted.groups)
    return AccessPlan(immediate=immediate, pending=pending)


def _account_refusal(actor: Any, user: Any, access: Access, by_group: Mapping[str, frozenset[str]]) -> str | None:
    """Why `actor` may not change `user`'s account at all (None: they may). Revoking is the safe
    direction only if the revoker could have granted it: otherwise one administrator could strip
    the superusers and the honest confirmers, and choose who is left to be the second person."""
    if actor.pk == user.pk:
        return None  # the rules on one's own account are the callers'
    if access.is_superuser and not actor.is_superuser:
        return f"{user} is a superuser: only a superuser can change, deactivate or delete their account."
    missing = unheld(actor, effective_permissions(access, by_group))
    if missing:
        return (
            f"{user} holds permissions you do not ({', '.join(missing)}): only an administrator who holds them "
            "can change, deactivate or delete their account."
        )
    return None


def account_refusal(actor: Any, user: Any) -> str | None:
    """`_account_refusal` on the stored account: for the admin's change and delete permissions."""
    access = read_access(user)
    return _account_refusal(actor, user, access, group_permissions(access.groups))


def _changes(old: Access, new: Access) -> dict[str, dict[str, str | None]]:
    changes: dict[str, dict[str, str | None]] = {}
    for flag in FLAGS:
        if getattr(old, flag) != getattr(new, flag):
            changes[flag] = {"old": str(getattr(old, flag)), "new": str(getattr(new, flag))}
    if old.permissions != new.permissions:
        changes["user_permissions"] = {"old": join(old.permissions), "new": join(new.permissions)}
    if old.groups != new.groups:
        changes["groups"] = {"old": join(old.groups), "new": join(new.groups)}
    return changes


def check_user_change(actor: Any, user: Any, wanted: Access) -> None:
    """The same checks as `change_user_access`, without locks or writes: for a form's clean()."""
    current = read_access(user)
    plan_user_change(actor, user, current, wanted, group_permissions(current.groups | wanted.groups))


@dataclass(frozen=True)
class AccessOutcome:
    applied: dict[str, dict[str, str | None]]  # what changed at once, old -> new
    pending: PendingChange | None  # what waits for a second person


def change_user_access(actor: Any, user_id: int, wanted: Access, *, reason: str = "") -> AccessOutcome:
    """Apply what may apply now and request the rest (see the module's rules), under the
    account's row lock and its groups' row locks. Raises ValidationError when refused (nothing
    is changed), PermissionDenied when the actor may not change accounts at all."""
    if not actor.has_perm("auth.change_user"):
        raise PermissionDenied(f"{actor} may not change accounts (needs auth.change_user)")
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model._default_manager.select_for_update().get(pk=user_id)
        current = read_access(user)
        by_group = group_permissions(current.groups | wanted.groups, lock=True)
        plan = plan_user_change(actor, user, current, wanted, by_group)
        applied = _changes(current, plan.immediate)
        if applied:
            _write_access(user, plan.immediate)
            record_event(
                USER_SUBJECT,
                user.pk,
                action="access_changed",
                from_status="",
                to_status="",
                actor=actor,
                reason=f"changed at once by {actor} (revocations and grants of no money permission): "
                f"{describe(applied)}" + (f"; reason: {reason}" if reason else ""),
            )
        pending = None
        if plan.pending:
            requested = dict(plan.pending)
            if "groups" in requested:  # bound by id, with what each group grants now
                requested["groups"] = groups_text(groups_by_name(wanted.groups))
            pending = request_change(user_model, user.pk, requested, user=actor, reason=reason)
    return AccessOutcome(applied=applied, pending=pending)


CREDENTIAL_ACTIONS = {
    "created": "created this account",
    "password_set": "set its password",
    "totp_device_enrolled": "enrolled its TOTP device",
    "totp_device_changed": "changed its TOTP device",
}


NOBODY_ELSE = "nobody but its owner"


def credential_holders(user_ids: Iterable[int]) -> dict[int, dict[Any, list[str]]]:
    """For each account, who else created it or set its credentials (they may know them), and
    what they did, in order; the key None is someone with server access (manage.py)."""
    holders: dict[int, dict[Any, list[str]]] = {user_id: {} for user_id in user_ids}
    events = (
        AuditEvent.objects.filter(
            subject_type=USER_SUBJECT, subject_id__in=list(holders), action__in=CREDENTIAL_ACTIONS
        )
        .select_related("actor")
        .order_by("id")
    )
    for event in events:
        if event.actor_id == event.subject_id:
            continue  # the owner's own credentials are theirs to know
        done = holders[event.subject_id].setdefault(event.actor, [])
        if CREDENTIAL_ACTIONS[event.action] not in done:
            done.append(CREDENTIAL_ACTIONS[event.action])
    return holders


def credentials_text(holders: Mapping[Any, list[str]]) -> str:
    """alice created this account, set its password; server access enrolled its TOTP device"""
    said = [f"{actor if actor is not None else 'server access'} {', '.join(done)}" for actor, done in holders.items()]
    return "; ".join(said) or NOBODY_ELSE


def _credentials_witness(user: Any) -> str:
    """Recorded with every change of an account, so the confirmer sees who may know its
    credentials, and the change is stale if anyone touches them before it is confirmed."""
    return credentials_text(credential_holders([user.pk])[user.pk])


def _members_witness(group: Group) -> str:
    """Recorded with every change of a group's permissions: its members, each with who may know
    their credentials. Someone who joined (or left) before confirmation makes it stale."""
    members = list(group.user_set.order_by("pk"))
    holders = credential_holders(member.pk for member in members)
    return "; ".join(f"{member} (#{member.pk}: {credentials_text(holders[member.pk])})" for member in members)


def _knows_credentials(confirmer: Any, user_ids: Iterable[int]) -> list[str]:
    return [
        f"{', '.join(done)} (account #{user_id})"
        for user_id, holders in credential_holders(user_ids).items()
        for actor, done in holders.items()
        if actor is not None and actor.pk == confirmer.pk
    ]


def pending_access_changes(user: Any) -> list[PendingChange]:
    """The changes awaiting confirmation that would change what `user` may do: of the account
    itself, or of the permissions of a group it is in."""
    group_ids = list(user.groups.values_list("pk", flat=True))
    return list(
        PendingChange.objects.filter(status=PendingChangeStatus.PENDING).filter(
            Q(subject_type=USER_SUBJECT, subject_id=user.pk) | Q(subject_type=GROUP_SUBJECT, subject_id__in=group_ids)
        )
    )


def _write_access(user: Any, access: Access) -> None:
    for flag in FLAGS:
        setattr(user, flag, getattr(access, flag))
    user.save(update_fields=list(FLAGS))
    user.user_permissions.set(permissions_by_key(access.permissions))
    user.groups.set(groups_by_name(access.groups))


def _group_in_pending_membership(group: Group) -> bool:
    """Whether a pending change of an account would make it a member of `group`."""
    pending = PendingChange.objects.filter(
        subject_type=USER_SUBJECT, status=PendingChangeStatus.PENDING, changes__has_key="groups"
    ).values_list("changes__groups__new", flat=True)
    try:
        return any(recorded.id == group.pk for text in pending for recorded in parse_groups(text))
    except ValidationError:
        return True  # a change recorded by names only, before ids: it might name this group


# --- a group's permissions ----------------------------------------------------------------------


def _is_member(user: Any, group: Group) -> bool:
    return bool(group.pk is not None and group.user_set.filter(pk=user.pk).exists())


def plan_group_change(actor: Any, group: Group, current: frozenset[str], wanted: frozenset[str]) -> dict[str, str]:
    """Check a change of a group's permissions by `actor`; returns the pending part ({} when it
    all applies at once). Raises ValidationError when refused."""
    if wanted == current:
        return {}
    if _is_member(actor, group):
        raise ValidationError(
            f"You are a member of {group.name!r}: its permissions are yours, and you cannot change your own. "
            "Another administrator must."
        )
    missing = unheld(actor, wanted - current)
    if missing:
        raise ValidationError(f"You cannot grant permissions you do not hold: {', '.join(missing)}.")
    refusal = _group_refusal(actor, group, current)
    if refusal:
        raise ValidationError(refusal)
    if not (wanted - current) & money_permissions() or group.pk is None:
        return {}
    # A member waiting for confirmation counts as a member: the group must not grow under them.
    if group.user_set.exists() or _group_in_pending_membership(group):
        return {"permissions": join(wanted)}
    return {}


def check_group_change(actor: Any, group: Group, wanted: frozenset[str]) -> None:
    current = group_permissions([group.name])[group.name] if group.pk is not None else frozenset()
    plan_group_change(actor, group, current, wanted)


def change_group_permissions(actor: Any, group_id: int, wanted: frozenset[str], *, reason: str = "") -> AccessOutcome:
    """Revocations, and grants that reach no member's money power, apply at once; adding a money
    permission to a group with members waits for a second person. Under the group's row lock
    (which a membership change takes too)."""
    if not actor.has_perm("auth.change_group"):
        raise PermissionDenied(f"{actor} may not change groups (needs auth.change_group)")
    with transaction.atomic():
        group = Group.objects.select_for_update().get(pk=group_id)
        current = group_permissions([group.name])[group.name]
        pending = plan_group_change(actor, group, current, wanted)
        immediate = (
            wanted
            if not pending
            else (current & wanted) | {p for p in wanted - current if p not in money_permissions()}
        )
        applied: dict[str, dict[str, str | None]] = {}
        if immediate != current:
            applied = {"permissions": {"old": join(current), "new": join(immediate)}}
            group.permissions.set(permissions_by_key(immediate))
            record_event(
                GROUP_SUBJECT,
                group.pk,
                action="access_changed",
                from_status="",
                to_status="",
                actor=actor,
                reason=f"changed at once by {actor}: {describe(applied)}" + (f"; reason: {reason}" if reason else ""),
            )
        change = request_change(Group, group.pk, pending, user=actor, reason=reason) if pending else None
    return AccessOutcome(applied=applied, pending=change)


def _group_refusal(actor: Any, group: Group, permissions: frozenset[str]) -> str | None:
    """A group's permissions are its members': as for an account, only someone who holds them
    all revokes them (or deletes the group), or one administrator could strip its members."""
    missing = unheld(actor, permissions)
    if missing:
        return (
            f"The group {group.name!r} grants permissions you do not hold ({', '.join(missing)}): only an "
            "administrator who holds them can change or delete it."
        )
    return None


def check_group_deletion(actor: Any, group: Group) -> None:
    if _is_member(actor, group):
        raise PermissionDenied(f"You are a member of {group.name!r}: deleting it changes your own permissions.")
    refusal = _group_refusal(actor, group, group_permissions([group.name])[group.name])
    if refusal:
        raise PermissionDenied(refusal)


def check_user_deletion(actor: Any, user: Any) -> None:
    if actor.pk == user.pk:
        raise PermissionDenied("You cannot delete your own account.")
    refusal = account_refusal(actor, user)
    if refusal:
        raise PermissionDenied(refusal)


# --- passwords and second factors ---------------------------------------------------------------


def password_refusal(actor: Any, user: Any) -> str | None:
    """Why `actor` may not set `user`'s password in the admin (None: they may). Their own: yes
    (they are its owner). Another's: only when it gives them nothing they do not hold, and never
    an account with money power (its owner changes it, or someone with server access)."""
    if actor.pk == user.pk:
        return None
    access = read_access(user)
    by_group = group_permissions(access.groups)
    if access.is_superuser or effective_permissions(access, by_group) & money_permissions():
        return (
            f"{user} holds money permissions: setting their password would take their account over. They change it "
            "themselves, or an operator with server access runs manage.py changepassword."
        )
    missing = unheld(actor, effective_permissions(access, by_group))
    if missing:
        return f"{user} holds permissions you do not ({', '.join(missing)}): you cannot set their password."
    return _pending_refusal(user, "set their password")


def _pending_refusal(user: Any, what: str) -> str | None:
    """Whoever sets an account's credentials while a grant to it waits would hold the account the
    grant is confirmed to."""
    pending = pending_access_changes(user)
    if pending:
        numbers = ", ".join(f"#{change.pk}" for change in pending)
        return (
            f"{user} has access changes awaiting confirmation ({numbers}): you cannot {what} until they are "
            "confirmed or rejected."
        )
    return None


def record_password_set(actor: Any, user: Any) -> None:
    record_event(
        USER_SUBJECT, user.pk, action="password_set", from_status="", to_status="", actor=actor,
        reason=f"password set in the admin by {actor}",
    )  # fmt: skip


def device_refusal(actor: Any, owner: Any) -> str | None:
    """A TOTP device is enrolled, changed or removed by its owner's second person, never by the
    owner through the admin (enrolling your own would let a password alone pass as two factors)."""
    if actor is not None and owner is not None and actor.pk == owner.pk:
        return (
            "You cannot enrol, change or remove a TOTP device of your own account: a second administrator does, "
            "or an operator with server access (manage.py add_totp_device)."
        )
    if actor is not None and owner is not None:
        return account_refusal(actor, owner)
    return None


def enrolment_refusal(actor: Any, owner: Any) -> str | None:
    """Enrolling a device sets a credential: `device_refusal`, and not while a grant to the
    account waits for confirmation."""
    return device_refusal(actor, owner) or (owner is not None and _pending_refusal(owner, "enrol a device")) or None


def record_device_event(actor: Any, device: Any, action: str, detail: str = "") -> None:
    """action: totp_device_enrolled, totp_device_changed, totp_device_removed."""
    who = f"by {actor}" if actor is not None else "with server access (manage.py add_totp_device)"
    record_event(
        USER_SUBJECT,
        device.user_id,
        action=action,
        from_status="",
        to_status="",
        actor=actor,
        reason=f"TOTP device {device.name!r} (#{device.pk}) {action.removeprefix('totp_device_')} {who}"
        + (f": {detail}" if detail else ""),
    )


def record_group_renamed(actor: Any, group: Group, old_name: str) -> None:
    """A name is what people read in changes and histories: a rename is on the record."""
    record_event(
        GROUP_SUBJECT, group.pk, action="renamed", from_status="", to_status="", actor=actor,
        reason=f"name: {old_name!r} -> {group.name!r} (by {actor})",
    )  # fmt: skip


def record_account_created(actor: Any, user: Any) -> None:
    record_event(
        USER_SUBJECT, user.pk, action="created", from_status="", to_status="", actor=actor,
        reason=f"account created in the admin by {actor}, with no permission, group or staff status",
    )  # fmt: skip


# --- the kernel's registration ------------------------------------------------------------------


def _confirm_user_change(user: Any, changes: Mapping[str, Mapping[str, str | None]], confirmer: Any) -> None:
    """A confirmer is a second person who may grant it too, never the account itself nor anyone
    who created it or set its credentials (they may know them)."""
    if confirmer.pk == user.pk:
        raise PermissionDenied(f"{confirmer} is the subject of this change: another person must confirm it")
    known = _knows_credentials(confirmer, [user.pk])
    if known:
        raise PermissionDenied(
            f"{confirmer} {'; '.join(known)}, and may know its credentials: another person must confirm it"
        )
    stored = read_access(user)
    # What the change grants, judged against the values it was requested on, groups with the
    # permissions recorded then (if anything moved since, the kernel finds it stale).
    by_group = dict(group_permissions(stored.groups))
    try:
        for side in ("old", "new"):
            if "groups" in changes:
                by_group.update((group.name, group.permissions) for group in parse_groups(changes["groups"][side]))
    except ValidationError:
        return  # groups recorded by names only, before ids: `_write_groups` refuses it, and it is stale
    before, wanted = _recorded_access(stored, changes, "old"), _recorded_access(stored, changes, "new")
    refusals = _grant_refusals(confirmer, before, wanted, by_group)
    if refusals:
        raise PermissionDenied(f"{confirmer} may not confirm this change: " + " ".join(refusals))


def _recorded_access(stored: Access, changes: Mapping[str, Mapping[str, str | None]], side: str) -> Access:
    values: dict[str, Any] = {flag: changes[flag][side] == "True" for flag in FLAGS if flag in changes}
    if "user_permissions" in changes:
        values["permissions"] = split(changes["user_permissions"][side])
    if "groups" in changes:
        values["groups"] = frozenset(group.name for group in parse_groups(changes["groups"][side]))
    return replace(stored, **values)


def _confirm_group_change(group: Group, changes: Mapping[str, Mapping[str, str | None]], confirmer: Any) -> None:
    if _is_member(confirmer, group):
        raise PermissionDenied(f"{confirmer} is a member of {group.name!r}: another person must confirm it")
    known = _knows_credentials(confirmer, group.user_set.values_list("pk", flat=True))
    if known:
        raise PermissionDenied(
            f"{confirmer} {'; '.join(known)} of a member of {group.name!r}, and may know its credentials: "
            "another person must confirm it"
        )
    added = split(changes["permissions"]["new"]) - split(changes["permissions"]["old"])
    missing = unheld(confirmer, added)
    if missing:
        raise PermissionDenied(
            f"{confirmer} may not confirm a grant of permissions they do not hold: {', '.join(missing)}"
        )


def _write_permissions(user: Any, text: str | None) -> None:
    user.user_permissions.set(permissions_by_key(split(text)))


def _write_groups(user: Any, text: str | None) -> None:
    """The recorded groups, by id, only if each still grants what it did at the request."""
    recorded = parse_groups(text)
    groups = {group.pk: group for group in Group.objects.select_for_update().filter(pk__in=[g.id for g in recorded])}
    now = _permissions_by_group(groups.values())
    problems = []
    for group in recorded:
        if group.id not in groups:
            problems.append(f"the group {group.name!r} (#{group.id}) no longer exists")
        elif now[group.id] != group.permissions:
            problems.append(
                f"the group {group.name!r} (#{group.id}) now grants {join(now[group.id]) or NO_PERMISSION}, "
                f"not {join(group.permissions) or NO_PERMISSION} as when it was requested"
            )
    if problems:
        raise ValidationError(problems)
    user.groups.set(groups.values())


def _write_group_permissions(group: Group, text: str | None) -> None:
    group.permissions.set(permissions_by_key(split(text)))


def register_access_subjects() -> None:
    """From the kernel app's ready(): accounts and groups are guarded subjects of the two-person rule."""
    register_guarded_fields(
        USER_SUBJECT,
        get_user_model(),
        {name: "auth.change_user" for name in (*FLAGS, "user_permissions", "groups", "credentials")},
        virtual={
            "user_permissions": VirtualField(
                read=lambda user: join(read_access(user).permissions), write=_write_permissions
            ),
            "groups": VirtualField(read=lambda user: groups_text(user.groups.order_by("pk")), write=_write_groups),
            "credentials": VirtualField(read=_credentials_witness),
        },
        confirm_check=_confirm_user_change,
    )
    register_guarded_fields(
        GROUP_SUBJECT,
        Group,
        {"permissions": "auth.change_group", "members": "auth.change_group"},
        virtual={
            "permissions": VirtualField(
                read=lambda group: join(group_permissions([group.name])[group.name]), write=_write_group_permissions
            ),
            "members": VirtualField(read=_members_witness),
        },
        confirm_check=_confirm_group_change,
    )
