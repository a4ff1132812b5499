"""Administering people is a money control, through the admin with staff users of exact
permission sets:

- the attack: a staff account with change_user and add_totpdevice cannot make itself a
  superuser, enrol its own device or grant what it does not hold, even with forged POSTs;
- a grant of money power (a money permission, superuser status, a group that carries one) waits
  for a second person who may grant it too and is not its subject; revoking is immediate;
- a group's permissions are their members' permissions;
- every change, enrolment and password set is in the account's history;
- people administration needs a TOTP-verified session.
"""

import html
import threading
import time
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils.html import escape
from django_otp.plugins.otp_totp.models import TOTPDevice

from pgp_project.admin_site import NO_DEVICE_MESSAGE
from pgp_project.operations.access_control import (
    Access,
    change_group_permissions,
    change_user_access,
    read_access,
)
from pgp_project.operations.models import AuditEvent, PendingChange, PendingChangeStatus
from pgp_project.operations.pending_changes import confirm_change

from ..people import logged_in, permission, staff
from .test_admin_login import current_token, log_in

pytestmark = pytest.mark.django_db

USER_CHANGE = "admin:auth_user_change"
GROUP_CHANGE = "admin:auth_group_change"
PENDING_CHANGES = "admin:operations_pendingchange_changelist"
DEVICE_ADD = "admin:otp_totp_totpdevice_add"
PEOPLE = ("auth.view_user", "auth.change_user")
KEY = "3132333435363738393031323334353637383930"


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def user_form(user: User, **changes: Any) -> dict[str, Any]:
    """The account's change form as the admin posts it (booleans: present when ticked)."""
    user = fresh(user)
    form: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "groups": [group.pk for group in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        **{flag: "on" for flag in ("is_active", "is_staff", "is_superuser") if getattr(user, flag)},
    }
    for name, value in changes.items():
        if value is False:
            form.pop(name, None)
        else:
            form[name] = "on" if value is True else value
    return form


def post_user(http: HttpClient, user: User, **changes: Any) -> Any:
    return http.post(reverse(USER_CHANGE, args=[user.pk]), user_form(user, **changes), follow=True)


def confirm_in_admin(http: HttpClient, change: PendingChange) -> str:
    page = http.post(
        reverse(PENDING_CHANGES), {"action": "confirm_changes", "_selected_action": [change.pk]}, follow=True
    )
    return html.unescape(page.content.decode())


def perms(user: User) -> set[str]:
    return set(read_access(fresh(user)).permissions)


def events(user: User) -> list[tuple[str, User | None]]:
    return [
        (e.action, e.actor)
        for e in AuditEvent.objects.filter(subject_type="user", subject_id=user.pk)
        .order_by("id")
        .select_related("actor")
    ]


def device_form(owner: User) -> dict[str, Any]:
    return {
        "user": owner.pk, "name": "phone", "confirmed": "on", "key": KEY, "step": 30, "t0": 0, "digits": 6,
        "tolerance": 1, "drift": 0, "throttling_failure_count": 0,
    }  # fmt: skip


# --- the attack ---------------------------------------------------------------------------------


def test_a_people_administrator_cannot_make_itself_a_superuser_or_enrol_its_own_device() -> None:
    mallory = staff("mallory", *PEOPLE, "otp_totp.view_totpdevice", "otp_totp.add_totpdevice")
    http = logged_in(mallory)

    # Its own account's access is shown read-only, not as inputs ...
    page = http.get(reverse(USER_CHANGE, args=[mallory.pk])).content.decode()
    assert 'name="is_superuser"' not in page
    assert 'name="user_permissions"' not in page
    # ... and a forged POST of them changes nothing.
    confirm = permission("operations.confirm_change").pk
    forged = post_user(http, mallory, is_superuser=True, user_permissions=[confirm], first_name="M")
    assert forged.status_code == 200
    after = fresh(mallory)
    assert after.first_name == "M"  # the rest of the form saved
    assert not after.is_superuser
    assert perms(after) == set(PEOPLE) | {"otp_totp.view_totpdevice", "otp_totp.add_totpdevice"}
    # Nor through the service.
    with pytest.raises(ValidationError, match="your own account"):
        change_user_access(mallory, mallory.pk, Access(True, True, True, frozenset(), frozenset()))
    assert not fresh(mallory).is_superuser

    # Its own TOTP device: refused with a clear error, nothing enrolled.
    refused = http.post(reverse(DEVICE_ADD), device_form(mallory))
    assert refused.status_code == 200
    assert "You cannot enrol, change or remove a TOTP device of your own account" in html.unescape(
        refused.content.decode()
    )
    assert not TOTPDevice.objects.exists()
    assert not PendingChange.objects.exists()
    assert not AuditEvent.objects.filter(subject_type="user").exclude(action="created").exists()
    # Nor delete its own account (which would also drop its own permissions).
    mallory.user_permissions.add(permission("auth.delete_user"))
    deleting = logged_in(fresh(mallory)).post(reverse("admin:auth_user_delete", args=[mallory.pk]), {"post": "yes"})
    assert deleting.status_code == 403
    assert User.objects.filter(pk=mallory.pk).exists()


def test_nobody_grants_what_they_do_not_hold() -> None:
    mallory = staff("mallory", *PEOPLE)
    accomplice = staff("accomplice")
    treasury = Group.objects.create(name="Treasury")
    treasury.permissions.add(permission("payouts.approve_payout"))
    http = logged_in(mallory)

    for changes, error in [
        ({"user_permissions": [permission("payouts.approve_payout").pk]}, "grant permissions you do not hold"),
        ({"user_permissions": [permission("auth.add_user").pk]}, "auth.add_user"),
        ({"is_superuser": True}, "Only a superuser can grant superuser status"),
        ({"groups": [treasury.pk]}, "You cannot add the group 'Treasury'"),
    ]:
        page = post_user(http, accomplice, **changes)
        assert error in html.unescape(page.content.decode()), changes
        assert read_access(fresh(accomplice)) == Access(True, True, False, frozenset(), frozenset())
    assert not PendingChange.objects.exists()
    assert events(accomplice) == []
    # A permission it does hold, not a money one, is granted at once.
    post_user(http, accomplice, user_permissions=[permission("auth.view_user").pk])
    assert perms(accomplice) == {"auth.view_user"}
    assert events(accomplice) == [("access_changed", mallory)]


# --- money grants need a second person ------------------------------------------------------------


def test_a_money_grant_waits_for_a_second_person_who_may_grant_it_and_is_not_its_subject() -> None:
    alice = staff("alice", *PEOPLE, "payouts.approve_payout", "payments.view_client", "operations.confirm_change")
    bob = staff("bob", "operations.confirm_change")
    carol = staff("carol", "operations.confirm_change")  # may confirm, but does not hold approve_payout
    dave = staff("dave", "operations.confirm_change", "payouts.approve_payout")
    wanted = [
        permission(name).pk for name in ("operations.confirm_change", "payouts.approve_payout", "payments.view_client")
    ]

    page = post_user(logged_in(alice), bob, user_permissions=wanted, change_reason="new approver")
    assert "awaiting confirmation by a second staff member" in page.content.decode()
    # The non-money grant applied at once; the money one waits.
    assert perms(bob) == {"operations.confirm_change", "payments.view_client"}
    assert not fresh(bob).has_perm("payouts.approve_payout")
    change = PendingChange.objects.get()
    assert (change.subject_type, change.subject_id, change.requested_by, change.reason) == (
        "user", bob.pk, alice, "new approver",
    )  # fmt: skip
    assert change.changes == {
        "user_permissions": {
            "old": "operations.confirm_change,payments.view_client",
            "new": "operations.confirm_change,payments.view_client,payouts.approve_payout",
        },
        "credentials": {"old": "nobody but its owner", "new": "nobody but its owner"},
    }

    # Not the requester, not the subject, not someone who could not grant it themselves.
    assert "a second staff member must confirm it" in confirm_in_admin(logged_in(alice), change)
    assert "Bob is the subject of this change" in confirm_in_admin(logged_in(bob), change)
    assert "Carol may not confirm this change" in confirm_in_admin(logged_in(carol), change)
    with pytest.raises(PermissionDenied):
        confirm_change(change.pk, carol)
    assert PendingChange.objects.get().status == PendingChangeStatus.PENDING
    assert not fresh(bob).has_perm("payouts.approve_payout")

    confirm_in_admin(logged_in(dave), change)
    change.refresh_from_db()
    assert (change.status, change.decided_by) == (PendingChangeStatus.APPLIED, dave)
    assert fresh(bob).has_perm("payouts.approve_payout")

    assert events(bob) == [("access_changed", alice), ("change_requested", alice), ("change_confirmed", dave)]
    confirmed = AuditEvent.objects.get(subject_type="user", subject_id=bob.pk, action="change_confirmed")
    assert "'operations.confirm_change,payments.view_client' -> " in confirmed.reason
    assert "payouts.approve_payout'" in confirmed.reason
    # The account's page shows its history.
    history = html.unescape(logged_in(alice).get(reverse(USER_CHANGE, args=[bob.pk])).content.decode())
    assert "change_confirmed" in history
    assert "access_changed" in history


def test_a_confirmation_is_stale_when_the_permissions_changed_since() -> None:
    alice = staff("alice", *PEOPLE, "payouts.approve_payout", "payments.view_client")
    bob = staff("bob", "payments.view_client")
    post_user(
        logged_in(alice),
        bob,
        user_permissions=[permission("payouts.approve_payout").pk, permission("payments.view_client").pk],
    )
    change = PendingChange.objects.get()
    # Meanwhile someone revokes view_client: at once, and the pending grant no longer matches.
    post_user(logged_in(staff("erin", *PEOPLE, "payments.view_client")), bob, user_permissions=[])
    assert perms(bob) == set()
    decided = confirm_change(change.pk, staff("dave", "operations.confirm_change", "payouts.approve_payout"))
    assert decided.status == PendingChangeStatus.STALE
    assert "user_permissions is now ''" in decided.decision_note
    assert perms(bob) == set()


def test_revoking_and_deactivating_are_immediate_and_audited() -> None:
    bob = staff("bob", "payouts.approve_payout", "payments.view_client")
    erin = staff("erin", *PEOPLE, "payouts.approve_payout", "payments.view_client")  # could grant them too
    post_user(logged_in(erin), bob, user_permissions=[permission("payments.view_client").pk], is_active=False)
    after = fresh(bob)
    assert perms(after) == {"payments.view_client"}
    assert not after.is_active
    assert not PendingChange.objects.exists()
    event = AuditEvent.objects.get(subject_type="user", subject_id=bob.pk)
    assert (event.action, event.actor) == ("access_changed", erin)
    assert "is_active: 'True' -> 'False'" in event.reason
    assert "'payments.view_client,payouts.approve_payout' -> 'payments.view_client'" in event.reason

    # Reactivating an account that holds a money permission gives it back: a second person, again.
    bob.user_permissions.add(permission("payouts.approve_payout"))
    post_user(logged_in(erin), bob, is_active=True)
    assert not fresh(bob).is_active
    assert PendingChange.objects.get().changes["is_active"] == {"old": "False", "new": "True"}


def test_superuser_status_is_granted_by_a_superuser_and_confirmed_by_another() -> None:
    root = staff("root", superuser=True)
    bob = staff("bob")
    post_user(logged_in(root), bob, is_superuser=True)
    assert not fresh(bob).is_superuser
    change = PendingChange.objects.get()
    assert change.changes["is_superuser"] == {"old": "False", "new": "True"}
    confirmer = staff("confirmer", "operations.confirm_change", "payouts.approve_payout")
    assert "Only a superuser can grant superuser status" in confirm_in_admin(logged_in(confirmer), change)
    assert not fresh(bob).is_superuser
    confirm_in_admin(logged_in(staff("root2", superuser=True)), change)
    assert fresh(bob).is_superuser


# --- groups ------------------------------------------------------------------------------------


def test_group_membership_and_group_permissions_follow_the_same_rules() -> None:
    treasury = Group.objects.create(name="Treasury")
    alice = staff(
        "alice", *PEOPLE, "auth.view_group", "auth.change_group", "payouts.approve_payout", "payments.view_client"
    )
    bob = staff("bob")
    # Adding bob to a group without money permissions applies at once ...
    post_user(logged_in(alice), bob, groups=[treasury.pk])
    assert read_access(fresh(bob)).groups == {"Treasury"}
    assert not PendingChange.objects.exists()

    # ... adding a money permission to it, now that it has a member, waits for a second person.
    url = reverse(GROUP_CHANGE, args=[treasury.pk])
    approve, view_client = permission("payouts.approve_payout").pk, permission("payments.view_client").pk
    page = logged_in(alice).post(url, {"name": "Treasury", "permissions": [approve, view_client]}, follow=True)
    assert "awaiting confirmation" in page.content.decode()
    assert set(treasury.permissions.values_list("codename", flat=True)) == {"view_client"}
    assert not fresh(bob).has_perm("payouts.approve_payout")
    change = PendingChange.objects.get()
    assert (change.subject_type, change.changes) == (
        "group",
        {
            "permissions": {"old": "payments.view_client", "new": "payments.view_client,payouts.approve_payout"},
            # its members are part of what is confirmed
            "members": {
                "old": f"bob (#{bob.pk}: nobody but its owner)",
                "new": f"bob (#{bob.pk}: nobody but its owner)",
            },
        },
    )
    # bob is a member: confirming it would be granting himself.
    bob.user_permissions.add(permission("operations.confirm_change"), permission("payouts.approve_payout"))
    assert "Bob is a member of 'Treasury'" in confirm_in_admin(logged_in(fresh(bob)), change)
    assert PendingChange.objects.get().status == PendingChangeStatus.PENDING
    confirm_in_admin(logged_in(staff("dave", "operations.confirm_change", "payouts.approve_payout")), change)
    assert PendingChange.objects.get().status == PendingChangeStatus.APPLIED
    assert set(treasury.permissions.values_list("codename", flat=True)) == {"view_client", "approve_payout"}

    # Membership of a group that carries a money permission waits too.
    carol = staff("carol")
    post_user(logged_in(alice), carol, groups=[treasury.pk])
    assert read_access(fresh(carol)).groups == frozenset()
    # bound by the group's id, with what it grants at the request
    assert PendingChange.objects.get(status="pending").changes["groups"] == {
        "old": "",
        "new": f"Treasury (#{treasury.pk}: payments.view_client payouts.approve_payout)",
    }


def test_a_member_cannot_change_its_own_groups_permissions_and_nobody_grants_a_group_what_they_lack() -> None:
    treasury = Group.objects.create(name="Treasury")
    alice = staff("alice", "auth.view_group", "auth.change_group", "payments.view_client")
    alice.groups.add(treasury)
    url = reverse(GROUP_CHANGE, args=[treasury.pk])
    assert 'name="permissions"' not in logged_in(alice).get(url).content.decode()
    forged = logged_in(alice).post(url, {"name": "Treasury", "permissions": [permission("payments.view_client").pk]})
    assert forged.status_code == 302
    assert not treasury.permissions.exists()
    # Not a member: still only what it holds.
    empty = Group.objects.create(name="Empty")
    page = logged_in(alice).post(
        reverse(GROUP_CHANGE, args=[empty.pk]),
        {"name": "Empty", "permissions": [permission("payouts.approve_payout").pk]},
    )
    assert "You cannot grant permissions you do not hold: payouts.approve_payout" in html.unescape(
        page.content.decode()
    )
    assert not empty.permissions.exists()
    # And an empty group takes what it holds at once (its future members' grants are the guarded step).
    logged_in(alice).post(
        reverse(GROUP_CHANGE, args=[empty.pk]),
        {"name": "Empty", "permissions": [permission("payments.view_client").pk]},
    )
    assert list(empty.permissions.values_list("codename", flat=True)) == ["view_client"]
    assert AuditEvent.objects.get(subject_type="group", subject_id=empty.pk).action == "access_changed"


@pytest.mark.django_db(transaction=True)
def test_a_membership_decided_while_a_money_permission_is_added_to_the_group_waits_for_it() -> None:
    """An empty group takes a money permission at once, and a group without one takes a member
    at once: both at the same moment must not add up to a member with money power. The
    membership waits for the group's row lock, then sees the permission."""
    treasury = Group.objects.create(name="Treasury")
    alice = staff("alice", *PEOPLE, "auth.change_group", "payouts.approve_payout")
    bob = staff("bob")
    added = threading.Event()

    def add_permission_and_hold_the_transaction() -> None:
        try:
            with transaction.atomic():
                change_group_permissions(alice, treasury.pk, frozenset({"payouts.approve_payout"}))
                added.set()
                time.sleep(1.0)  # the membership below runs meanwhile
        finally:
            connection.close()

    def add_member() -> None:
        try:
            added.wait(10)
            change_user_access(alice, bob.pk, replace_groups(bob, {"Treasury"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=add_permission_and_hold_the_transaction), threading.Thread(target=add_member)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(treasury.permissions.values_list("codename", flat=True)) == {"approve_payout"}
    assert read_access(fresh(bob)).groups == frozenset()
    assert not fresh(bob).has_perm("payouts.approve_payout")
    assert PendingChange.objects.get(subject_type="user", subject_id=bob.pk).changes["groups"] == {
        "old": "",
        "new": f"Treasury (#{treasury.pk}: payouts.approve_payout)",
    }


def replace_groups(user: User, groups: set[str]) -> Access:
    current = read_access(fresh(user))
    return Access(current.is_active, current.is_staff, current.is_superuser, current.permissions, frozenset(groups))


# --- devices, passwords and new accounts ------------------------------------------------------------


def test_a_second_person_enrols_a_device_and_every_device_change_is_audited() -> None:
    alice = staff(
        "alice", "otp_totp.view_totpdevice", "otp_totp.add_totpdevice", "otp_totp.change_totpdevice",
        "otp_totp.delete_totpdevice",
    )  # fmt: skip
    bob = staff("bob")
    http = logged_in(alice)
    assert http.post(reverse(DEVICE_ADD), device_form(bob)).status_code == 302
    device = TOTPDevice.objects.get(user=bob)
    assert events(bob) == [("totp_device_enrolled", alice)]
    # The secret is not on the device's page afterwards, and the device cannot move to alice.
    change_url = reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
    assert KEY not in http.get(change_url).content.decode()
    http.post(change_url, {**device_form(alice), "name": "renamed"})
    device.refresh_from_db()
    assert (device.user, device.name, device.key) == (bob, "renamed", KEY)
    assert events(bob)[-1] == ("totp_device_changed", alice)

    # Her own device (enrolled by someone else) she can neither change nor remove.
    own = TOTPDevice.objects.create(user=alice, name="own", confirmed=True)
    assert http.post(reverse("admin:otp_totp_totpdevice_change", args=[own.pk]), device_form(alice)).status_code == 403
    assert http.post(reverse("admin:otp_totp_totpdevice_delete", args=[own.pk]), {"post": "yes"}).status_code == 403
    bulk = http.post(
        reverse("admin:otp_totp_totpdevice_changelist"),
        {"action": "delete_selected", "_selected_action": [own.pk, device.pk], "post": "yes"},
    )
    assert bulk.status_code == 403
    assert TOTPDevice.objects.count() == 2
    # bob's alone she may remove, and it is in his history.
    http.post(reverse("admin:otp_totp_totpdevice_delete", args=[device.pk]), {"post": "yes"})
    assert not TOTPDevice.objects.filter(user=bob).exists()
    assert events(bob)[-1] == ("totp_device_removed", alice)


def test_an_enrolled_devices_key_and_settings_cannot_be_changed() -> None:
    alice = staff("alice", "otp_totp.view_totpdevice", "otp_totp.add_totpdevice", "otp_totp.change_totpdevice")
    bob = staff("bob")
    http = logged_in(alice)
    assert http.post(reverse(DEVICE_ADD), device_form(bob)).status_code == 302
    device = TOTPDevice.objects.get(user=bob)
    url = reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
    page = http.get(url).content.decode()
    for name in ("tolerance", "drift", "step", "throttling_failure_count", "key"):
        assert f'name="{name}"' not in page
    forged = {
        **device_form(bob), "name": "renamed", "key": "00" * 20, "tolerance": 32767, "step": 1, "t0": 5, "digits": 8,
        "drift": 100, "throttling_failure_count": 0, "last_t": 0,
    }  # fmt: skip
    http.post(url, forged)
    device.refresh_from_db()
    assert device.name == "renamed"
    assert (device.key, device.tolerance, device.step, device.t0, device.digits, device.drift) == (KEY, 1, 30, 0, 6, 0)


def test_enrolment_with_server_access_is_audited() -> None:
    bob = staff("bob")
    call_command("add_totp_device", "bob", stdout=StringIO(), stderr=StringIO())
    event = AuditEvent.objects.get(subject_type="user", subject_id=bob.pk)
    assert (event.action, event.actor) == ("totp_device_enrolled", None)
    assert "manage.py add_totp_device" in event.reason


def test_another_persons_password_is_set_only_on_an_account_without_money_power() -> None:
    alice = staff("alice", *PEOPLE, "payments.view_client")
    treasurer = staff("treasurer", "payouts.approve_payout")
    clerk = staff("clerk", "payments.view_client")
    form = {"password1": "a-new-long-passphrase", "password2": "a-new-long-passphrase", "usable_password": "true"}
    url = reverse("admin:auth_user_password_change", args=[treasurer.pk])
    page = logged_in(alice).post(url, form, follow=True)
    assert "setting their password would take their account over" in html.unescape(page.content.decode())
    assert fresh(treasurer).check_password("pw")
    logged_in(alice).post(reverse("admin:auth_user_password_change", args=[clerk.pk]), form)
    assert fresh(clerk).check_password("a-new-long-passphrase")
    assert events(clerk) == [("password_set", alice)]


def test_a_new_account_starts_with_nothing_whatever_the_post_says() -> None:
    alice = staff("alice", *PEOPLE, "auth.add_user", superuser=False)
    response = logged_in(alice).post(
        reverse("admin:auth_user_add"),
        {
            "username": "newcomer", "usable_password": "true", "password1": "a-new-long-passphrase",
            "password2": "a-new-long-passphrase", "is_superuser": "on", "is_staff": "on",
            "user_permissions": [permission("auth.change_user").pk],
        },
    )  # fmt: skip
    assert response.status_code == 302
    newcomer = User.objects.get(username="newcomer")
    assert read_access(newcomer) == Access(True, False, False, frozenset(), frozenset())
    assert events(newcomer) == [("created", alice)]
    # Its first money grant waits for a second person, who is told who made it.
    root = staff("root", superuser=True)
    post_user(logged_in(root), newcomer, is_staff=True)
    assert fresh(newcomer).is_staff  # no money power: at once
    post_user(logged_in(alice), newcomer, user_permissions=[permission("auth.change_user").pk], change_reason="hire")
    change = PendingChange.objects.get()
    assert change.reason == "hire"
    assert change.changes["credentials"] == {"old": "alice created this account", "new": "alice created this account"}
    assert not fresh(newcomer).has_perm("auth.change_user")


# --- a verified second factor -----------------------------------------------------------------------


def test_administering_people_needs_a_verified_totp_session(client: HttpClient, settings) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    staff("people", *PEOPLE)
    refused = log_in(client, "people", "pw")
    assert escape(NO_DEVICE_MESSAGE).encode() in refused.content
    client.force_login(User.objects.get(username="people"))
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 302  # to the login page

    call_command("add_totp_device", "people", stdout=StringIO(), stderr=StringIO())
    device = TOTPDevice.objects.get(user__username="people")
    fresh_client = HttpClient()
    assert log_in(fresh_client, "people", "pw").status_code == 200  # asks for the token
    assert log_in(fresh_client, "people", "pw", otp_token=current_token(device)).status_code == 302
    assert fresh_client.get(reverse("admin:auth_user_changelist")).status_code == 200
