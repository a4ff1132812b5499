"""Which fields of a client are money controls: a change of one is requested by one staff member
and applies once a second confirms it (`pgp_project.operations.pending_changes`).

And who stands behind a client's money, so that the same person cannot both set it up and
release money to it:
- a client created by one person starts inactive; its activation is a change a second person
  confirms (`open_client`);
- `people_behind_destination`: whoever created a client or requested or confirmed the changes
  that made a wallet its destination; none of them may approve a payout to that wallet;
- `release_needs_second_person`: routing a held payment to a client needs a second person when
  the payment predates the client's confirmed activation (money that waited for a client nobody
  had vouched for yet), or when the person routing it is one who set the client up.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from pgp_project.operations.models import PendingChange, PendingChangeStatus
from pgp_project.operations.pending_changes import people_behind, register_guarded_fields, request_change
from pgp_project.operations.state_machine import record_event
from pgp_project.outbox.events import record_event as record_outbox_event

from .models import Client, Payment

CLIENT_SUBJECT = "client"
CHANGE_DESTINATION = "payments.change_payout_destination"
CHANGE_FEES_AND_THRESHOLDS = "payments.change_fees_and_thresholds"
RESOLVE_HELD_PAYMENT = "payments.resolve_held_payment"  # route a held payment again, accept a partial one

DESTINATION_FIELDS = ("wallet_address", "payout_extra_id", "payout_network", "payout_currency", "external_id")

CLIENT_GUARDED_FIELDS = {
    # Where the client's money goes. external_id too: it is what an incoming payment's order_id
    # names, so swapping two clients' ids would send one client's payments to the other's wallet.
    # is_active: activating a client lets its held payments be routed and its frozen credit be
    # paid out, to the wallet it has.
    **dict.fromkeys(DESTINATION_FIELDS, CHANGE_DESTINATION),
    "is_active": CHANGE_DESTINATION,
    # How much of it, and when: instant sends every payment on its own, at once.
    "fee_percent_override": CHANGE_FEES_AND_THRESHOLDS,
    "payout_threshold_usd": CHANGE_FEES_AND_THRESHOLDS,
    "payout_strategy": CHANGE_FEES_AND_THRESHOLDS,
}


def register_client_money_controls() -> None:
    register_guarded_fields(
        CLIENT_SUBJECT,
        Client,
        CLIENT_GUARDED_FIELDS,
        confirm_check=refuse_people_behind_the_destination,
        on_applied=client_change_confirmed,
    )


def client_change_confirmed(client: Client, change: PendingChange) -> None:
    """The outbox event of a confirmed change of a client, in the confirming transaction."""
    payload = {
        "client": client.external_id,
        "change_id": change.pk,
        "changes": {name: values.get("new") for name, values in change.changes.items()},
    }
    record_outbox_event("client.change_confirmed", ("client", client.pk), payload, client_id=client.pk)


def refuse_people_behind_the_destination(client: Client, changes: Mapping[str, Any], user: Any) -> None:
    """A change of where a client's money goes (or its activation) is confirmed by nobody who set
    the client or its current destination up: else the one who created a client with her own
    wallet could confirm a colleague's activation request of it. Called under the row lock."""
    if not set(changes) & {*DESTINATION_FIELDS, "is_active"}:
        return
    behind = people_behind_client(client) | people_behind_destination(client.pk, client.wallet_address)
    if user.pk in behind:
        raise PermissionDenied(
            f"{user} set up client {client.external_id!r} or its current destination: a person independent of "
            "it must confirm this change"
        )


def deactivate_client(client_id: int, *, user: Any, reason: str = "") -> Client:
    """Freeze a client at once, by one person: its payments are held and nothing more is paid to
    it. The safe direction needs no second person (an operator who finds a compromised wallet
    must be able to stop money now); reactivating it is a change a second person confirms."""
    if not user.has_perm(CHANGE_DESTINATION):
        raise PermissionDenied(f"{user} may not deactivate clients (needs {CHANGE_DESTINATION})")
    with transaction.atomic():
        client = Client.objects.select_for_update().get(pk=client_id)
        if not client.is_active:
            return client
        Client.objects.filter(pk=client_id, is_active=True).update(is_active=False, updated_at=timezone.now())
        record_event(
            CLIENT_SUBJECT,
            client_id,
            action="deactivated",
            from_status="active",
            to_status="inactive",
            actor=user,
            reason=f"deactivated by {user}; its payments are held until a confirmed reactivation"
            + (f"; reason: {reason}" if reason else ""),
        )
        client.refresh_from_db()
    return client


def open_client(client: Client, *, user: Any, reason: str = "") -> PendingChange | None:
    """Save a new client one person sets up: stored inactive, with its activation requested
    (confirmed by a second person, who sees the wallet, strategy, threshold and fee it was created
    with). Returns the activation request, or None when the creator asked for an inactive client.
    The creator needs the permissions of every guarded field (`ClientAdmin.has_add_permission`)."""
    assert client.pk is None, "open_client creates a client; changes of one go through request_change"
    activate = client.is_active
    with transaction.atomic():
        client.is_active = False
        client.created_by = user if getattr(user, "pk", None) is not None else None
        client.full_clean()
        client.save()
        created_with = ", ".join(f"{name}={getattr(client, name)!r}" for name in CLIENT_GUARDED_FIELDS)
        record_event(
            CLIENT_SUBJECT,
            client.pk,
            action="created",
            from_status="",
            to_status="inactive",
            actor=user,
            reason=f"created by {user}, inactive until a second staff member confirms its activation: {created_with}",
        )
        if not activate:
            return None
        return request_change(
            Client,
            client.pk,
            {"is_active": True},
            user=user,
            reason=f"activate new client {client.external_id!r} ({created_with})" + (f"; {reason}" if reason else ""),
        )


def _applied_changes(client_id: int) -> list[PendingChange]:
    return list(
        PendingChange.objects.filter(
            subject_type=CLIENT_SUBJECT, subject_id=client_id, status=PendingChangeStatus.APPLIED
        ).order_by("decided_at", "id")
    )


def _sets(change: PendingChange, field: str, value: str | None = None) -> bool:
    new: Mapping[str, str | None] | None = change.changes.get(field)
    return new is not None and (value is None or new["new"] == value)


def activation_confirmed_at(client: Client) -> datetime:
    """When a second person last confirmed this client's activation; a client created active by
    the system (no such change) counts from its creation."""
    confirmed = [
        change.decided_at
        for change in _applied_changes(client.pk)
        if _sets(change, "is_active", "True") and change.decided_at is not None
    ]
    return confirmed[-1] if confirmed else client.created_at


def people_behind_destination(client_id: int, wallet_address: str) -> set[int]:
    """Ids of the people who made `wallet_address` this client's destination: who requested or
    confirmed the change that set it (or created the client with it), and every later change of
    where the client's money goes (network, currency, id, activation) until the wallet changed
    again."""
    changes = _applied_changes(client_id)
    set_here = [i for i, change in enumerate(changes) if _sets(change, "wallet_address", wallet_address)]
    people: set[int] = set()
    if set_here:
        start = set_here[-1]
        people |= people_behind(changes[start].requested_by_id) | people_behind(changes[start].decided_by_id)
        start += 1
    else:  # the wallet the client was created with
        start = 0
        created_by = Client.objects.filter(pk=client_id).values_list("created_by_id", flat=True).first()
        people |= people_behind(created_by)
    for change in changes[start:]:
        if _sets(change, "wallet_address"):
            break  # another wallet from here on
        if any(_sets(change, field) for field in (*DESTINATION_FIELDS, "is_active")):
            people |= people_behind(change.requested_by_id) | people_behind(change.decided_by_id)
    return people


def people_behind_client(client: Client) -> set[int]:
    """Who created the client or requested its activation."""
    people = people_behind(client.created_by_id)
    for change in _applied_changes(client.pk):
        if _sets(change, "is_active"):
            people |= people_behind(change.requested_by_id)
    return people


def release_needs_second_person(payment: Payment, client: Client, actor: Any) -> str:
    """Why routing this held payment to `client` needs a second person ('' when it does not)."""
    if getattr(actor, "pk", None) is None:
        return ""  # the system routes by the rules alone; only people's releases are gated
    if actor.pk in people_behind_client(client):
        return f"{actor} created client {client.external_id!r} or requested its activation"
    confirmed_at = activation_confirmed_at(client)
    if payment.created_at < confirmed_at:
        return (
            f"the payment arrived before client {client.external_id!r} was activated "
            f"(confirmed {confirmed_at:%Y-%m-%d %H:%M:%S %Z})"
        )
    return ""
