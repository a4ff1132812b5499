"""What a confirmer of an access change relies on holds until it is confirmed, and one people
administrator cannot shape who is left to be the second person:

- a pending membership is bound to the group's id and to what the group grants at the request
  (a group that grows meanwhile, or is renamed, does not ride along), and a group named in a
  pending membership counts as having members;
- a group's pending money grant records its members (and who may know their credentials): a
  member who joins meanwhile makes it stale;
- nobody sets the credentials of an account with a grant waiting for it; whoever created it or
  set its credentials does not confirm a grant to it, and a credential set meanwhile makes it stale;
- superusers' accounts are changed by superusers only, and accounts holding what the actor lacks
  are not changed (nor deactivated or deleted) by them;
- a change whose subject was deleted is stale, not a 500.
"""

import html
import threading
import time
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from pgp_project.operations.access_control import Access, change_group_permissions, change_user_access, read_access
from pgp_project.operations.models import AuditEvent, PendingChange, PendingChangeStatus
from pgp_project.operations.pending_changes import confirm_change, request_change

from .test_access_control import (
    DEVICE_ADD,
    GROUP_CHANGE,
    PEOPLE,
    confirm_in_admin,
    device_form,
    fresh,
    logged_in,
    permission,
    post_user,
    replace_groups,
    staff,
)

pytestmark = pytest.mark.django_db

CONFIRM = "operations.confirm_change"
RESOLVE = "payments.resolve_held_payment"
APPROVE = "payouts.approve_payout"
GROUPS = ("auth.view_group", "auth.change_group")
PASSWORD_FORM = {"password1": "a-new-long-passphrase", "password2": "a-new-long-passphrase", "usable_password": "true"}


def group_with(name: str, *permissions: str) -> Group:
    group = Group.objects.create(name=name)
    group.permissions.add(*(permission(p) for p in permissions))
    return group


def post_group(http, group: Group, name: str, *permissions: str):
    return http.post(
        reverse(GROUP_CHANGE, args=[group.pk]),
        {"name": name, "permissions": [permission(p).pk for p in permissions]},
        follow=True,
    )


def text(page) -> str:
    return html.unescape(page.content.decode())


# --- a pending membership is bound to the group as it was ----------------------------------------


def test_a_group_in_a_pending_membership_cannot_grow_at_once_and_a_grown_group_makes_it_stale() -> None:
    """The attack: put a puppet in a harmless-looking group (pending), then add confirm_change and
    approve_payout to the group while it has no member yet, and let a superuser confirm."""
    mallory = staff("mallory", *PEOPLE, *GROUPS, CONFIRM, RESOLVE, APPROVE)
    puppet = staff("puppet")
    held = group_with("held-payments", RESOLVE)
    http = logged_in(mallory)
    post_user(http, puppet, groups=[held.pk])
    membership = PendingChange.objects.get(subject_type="user", subject_id=puppet.pk)
    assert membership.changes["groups"]["new"] == f"held-payments (#{held.pk}: {RESOLVE})"

    # The group counts as having a member: its money grant waits for a second person.
    assert "awaiting confirmation" in text(post_group(http, held, "held-payments", RESOLVE, CONFIRM, APPROVE))
    assert set(held.permissions.values_list("codename", flat=True)) == {"resolve_held_payment"}
    grant = PendingChange.objects.get(subject_type="group", subject_id=held.pk)

    # Confirmed as requested, the membership gives what the confirmer saw, and nothing more.
    boss = staff("boss", superuser=True)
    confirm_in_admin(logged_in(boss), membership)
    assert read_access(fresh(puppet)).groups == {"held-payments"}
    assert not fresh(puppet).has_perm(CONFIRM)
    assert not fresh(puppet).has_perm(APPROVE)
    # ... and the group's grant, requested when the puppet was not yet a member, is stale.
    page = confirm_in_admin(logged_in(staff("boss2", superuser=True)), grant)
    assert f"Change #{grant.pk} stale: not applied: changed since the request (members is now 'puppet" in page
    assert not fresh(puppet).has_perm(APPROVE)


def test_a_membership_confirmed_after_its_group_grew_is_stale() -> None:
    mallory = staff("mallory", *PEOPLE, *GROUPS, CONFIRM, RESOLVE, APPROVE)
    puppet = staff("puppet")
    held = group_with("held-payments", RESOLVE)
    membership = change_user_access(mallory, puppet.pk, replace_groups(puppet, {"held-payments"})).pending
    grant = change_group_permissions(mallory, held.pk, frozenset({RESOLVE, CONFIRM, APPROVE})).pending
    assert membership is not None
    assert grant is not None
    confirm_change(grant.pk, staff("boss2", superuser=True))  # the group grows first
    decided = confirm_change(membership.pk, staff("boss", superuser=True))
    assert decided.status == PendingChangeStatus.STALE
    assert f"the group 'held-payments' (#{held.pk}) now grants" in decided.decision_note
    assert read_access(fresh(puppet)).groups == frozenset()
    assert not fresh(puppet).has_perm(APPROVE)


def test_renaming_a_group_does_not_redirect_a_pending_membership_and_is_audited() -> None:
    mallory = staff("mallory", *PEOPLE, *GROUPS, CONFIRM, RESOLVE, APPROVE)
    puppet = staff("puppet")
    mild = group_with("held-payments", RESOLVE)
    strong = group_with("approvers", CONFIRM, APPROVE)
    http = logged_in(mallory)
    post_user(http, puppet, groups=[mild.pk])
    membership = PendingChange.objects.get(subject_type="user", subject_id=puppet.pk)
    # Swap the names: the pending change named "held-payments".
    post_group(http, mild, "old-held", RESOLVE)
    post_group(http, strong, "held-payments", CONFIRM, APPROVE)
    assert Group.objects.get(pk=strong.pk).name == "held-payments"

    confirm_in_admin(logged_in(staff("boss", superuser=True)), membership)
    assert list(fresh(puppet).groups.values_list("pk", flat=True)) == [mild.pk]
    assert not fresh(puppet).has_perm(CONFIRM)
    renamed = AuditEvent.objects.get(subject_type="group", subject_id=strong.pk, action="renamed")
    assert (renamed.actor, renamed.reason) == (mallory, "name: 'approvers' -> 'held-payments' (by mallory)")


# --- a group's pending grant is bound to its members ------------------------------------------------


def test_a_member_who_joins_while_a_money_grant_to_the_group_waits_makes_it_stale() -> None:
    mallory = staff("mallory", *PEOPLE, *GROUPS, CONFIRM, RESOLVE)
    carol = staff("carol", *PEOPLE, CONFIRM, RESOLVE)
    innocent = staff("innocent")
    puppet = staff("puppet")
    support = group_with("support")
    innocent.groups.add(support)
    # carol set innocent's password: she may know it.
    logged_in(carol).post(reverse("admin:auth_user_password_change", args=[innocent.pk]), PASSWORD_FORM)
    assert fresh(innocent).check_password(PASSWORD_FORM["password1"])

    grant = change_group_permissions(mallory, support.pk, frozenset({RESOLVE}), reason="triage").pending
    assert grant is not None
    # The confirmer sees who is in the group, and who may know their credentials.
    assert grant.changes["members"]["old"] == f"innocent (#{innocent.pk}: carol set its password)"
    # carol may know a member's password: she does not confirm a grant to them.
    page = confirm_in_admin(logged_in(carol), grant)
    assert "may know its credentials: another person must confirm it" in page
    assert PendingChange.objects.get(pk=grant.pk).status == PendingChangeStatus.PENDING

    # The puppet joins the group (no money permission yet: at once) ...
    assert change_user_access(mallory, puppet.pk, replace_groups(puppet, {"support"})).pending is None
    # ... and the grant the confirmer would approve is no longer the one they are shown.
    decided = confirm_change(grant.pk, staff("boss", superuser=True))
    assert decided.status == PendingChangeStatus.STALE
    assert f"members is now 'innocent (#{innocent.pk}: carol set its password); puppet" in decided.decision_note
    assert not fresh(puppet).has_perm(RESOLVE)
    assert not support.permissions.exists()


# --- credentials of an account with a grant waiting --------------------------------------------------


def test_nobody_sets_the_credentials_of_an_account_whose_grant_waits() -> None:
    carol = staff("carol", *PEOPLE, CONFIRM)
    mallory = staff(
        "mallory", *PEOPLE, "otp_totp.view_totpdevice", "otp_totp.add_totpdevice", "otp_totp.change_totpdevice"
    )
    newbie = staff("newbie")
    post_user(logged_in(carol), newbie, user_permissions=[permission(CONFIRM).pk])
    change = PendingChange.objects.get(subject_type="user", subject_id=newbie.pk)

    http = logged_in(mallory)
    page = http.post(reverse("admin:auth_user_password_change", args=[newbie.pk]), PASSWORD_FORM, follow=True)
    assert f"has access changes awaiting confirmation (#{change.pk})" in text(page)
    assert fresh(newbie).check_password("pw")
    page = http.post(reverse(DEVICE_ADD), device_form(newbie))
    assert f"has access changes awaiting confirmation (#{change.pk})" in text(page)
    assert not TOTPDevice.objects.exists()

    # Credentials set another way meanwhile (server access) make the grant stale.
    call_command("add_totp_device", "newbie", stdout=StringIO(), stderr=StringIO())
    confirmed = confirm_in_admin(logged_in(staff("boss", superuser=True)), change)
    assert "not applied: changed since the request (credentials is now 'server access enrolled its" in confirmed
    assert not fresh(newbie).has_perm(CONFIRM)


def test_whoever_created_an_account_does_not_confirm_a_grant_to_it() -> None:
    creator = staff("creator", *PEOPLE, "auth.add_user", CONFIRM)
    logged_in(creator).post(
        reverse("admin:auth_user_add"),
        {"username": "newcomer", "usable_password": "true", "password1": "a-long-passphrase-1",
         "password2": "a-long-passphrase-1"},
    )  # fmt: skip
    newcomer = User.objects.get(username="newcomer")
    post_user(logged_in(staff("root", superuser=True)), newcomer, user_permissions=[permission(CONFIRM).pk])
    change = PendingChange.objects.get(subject_type="user", subject_id=newcomer.pk)
    assert change.changes["credentials"]["old"] == "creator created this account"
    page = confirm_in_admin(logged_in(creator), change)
    assert f"Creator created this account (account #{newcomer.pk}), and may know its credentials" in page
    assert not fresh(newcomer).has_perm(CONFIRM)
    confirm_in_admin(logged_in(staff("root2", superuser=True)), change)
    assert fresh(newcomer).has_perm(CONFIRM)


# --- who may change whose account ----------------------------------------------------------------


def test_a_people_administrator_cannot_touch_superusers_or_accounts_holding_what_it_lacks() -> None:
    mallory = staff("mallory", *PEOPLE, "auth.delete_user")
    root = staff("root", superuser=True)
    honest = staff("honest", CONFIRM, APPROVE)
    http = logged_in(mallory)
    for victim in (root, honest):
        # Shown, not editable; a forged POST is refused, and so is deleting.
        page = http.get(reverse("admin:auth_user_change", args=[victim.pk])).content.decode()
        assert 'name="is_active"' not in page
        forged = http.post(reverse("admin:auth_user_change", args=[victim.pk]), {"username": victim.username})
        assert forged.status_code == 403
        deleting = http.post(reverse("admin:auth_user_delete", args=[victim.pk]), {"post": "yes"})
        assert deleting.status_code == 403
    bulk = http.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [root.pk, honest.pk], "post": "yes"},
    )
    assert bulk.status_code == 403
    assert read_access(fresh(root)) == Access(True, True, True, frozenset(), frozenset())
    assert read_access(fresh(honest)) == Access(True, True, False, frozenset({CONFIRM, APPROVE}), frozenset())
    # Nor through the service, with a reason that says why.
    with pytest.raises(ValidationError, match="root is a superuser: only a superuser can change"):
        change_user_access(mallory, root.pk, Access(False, True, True, frozenset(), frozenset()))  # deactivate
    with pytest.raises(ValidationError, match=r"honest holds permissions you do not \(operations.confirm_change"):
        change_user_access(mallory, honest.pk, Access(True, True, False, frozenset(), frozenset()))  # revoke all
    # A superuser may.
    post_user(logged_in(staff("root2", superuser=True)), honest, user_permissions=[permission(CONFIRM).pk])
    assert read_access(fresh(honest)).permissions == {CONFIRM}


def test_a_group_granting_what_the_administrator_lacks_is_neither_stripped_nor_deleted() -> None:
    mallory = staff("mallory", *GROUPS, "auth.delete_group")
    confirmers = group_with("confirmers", CONFIRM)
    staff("honest").groups.add(confirmers)
    http = logged_in(mallory)
    page = post_group(http, confirmers, "confirmers")  # every permission unticked
    assert "The group 'confirmers' grants permissions you do not hold (operations.confirm_change)" in text(page)
    assert http.post(reverse("admin:auth_group_delete", args=[confirmers.pk]), {"post": "yes"}).status_code == 403
    assert list(Group.objects.get(pk=confirmers.pk).permissions.values_list("codename", flat=True)) == [
        "confirm_change"
    ]


# --- the kernel ----------------------------------------------------------------------------------


def test_a_change_whose_subject_was_deleted_is_stale() -> None:
    alice = staff("alice", *PEOPLE, CONFIRM)
    victim = staff("victim")
    post_user(logged_in(alice), victim, user_permissions=[permission(CONFIRM).pk])
    change = PendingChange.objects.get()
    User.objects.filter(pk=victim.pk).delete()
    page = confirm_in_admin(logged_in(staff("boss", superuser=True)), change)
    assert f"Change #{change.pk} stale: not applied: its subject no longer exists" in page
    assert PendingChange.objects.get().status == PendingChangeStatus.STALE


def test_a_membership_recorded_by_group_names_only_is_stale_and_holds_money_grants_to_groups() -> None:
    """Changes requested before groups were recorded by id name them only: what they would grant
    cannot be told, so confirming one applies nothing, and while one waits any group may be it."""
    alice = staff("alice", *PEOPLE, *GROUPS, CONFIRM, APPROVE)
    bob = staff("bob")
    treasury = group_with("Treasury")
    legacy = request_change(User, bob.pk, {"groups": "Treasury"}, user=alice)
    assert legacy is not None
    grant = change_group_permissions(alice, treasury.pk, frozenset({APPROVE})).pending
    assert grant is not None  # waits: the legacy membership might name it
    decided = confirm_change(legacy.pk, staff("boss", superuser=True))
    assert decided.status == PendingChangeStatus.STALE
    assert "not a recorded group: 'Treasury'" in decided.decision_note
    assert not fresh(bob).groups.exists()


@pytest.mark.django_db(transaction=True)
def test_a_password_set_while_a_grant_is_being_requested_waits_for_it_and_is_refused() -> None:
    """The refusal is decided under the account's row lock, which the grant's request holds: a
    password posted at that moment waits, then sees the grant and is refused."""
    carol = staff("carol", *PEOPLE, CONFIRM)
    mallory = staff("mallory", *PEOPLE)
    newbie = staff("newbie")
    requested = threading.Event()

    def request_grant_and_hold_the_transaction() -> None:
        try:
            with transaction.atomic():
                change_user_access(carol, newbie.pk, Access(True, True, False, frozenset({CONFIRM}), frozenset()))
                requested.set()
                time.sleep(1.0)  # the password below is posted meanwhile
        finally:
            connection.close()

    pages: list[str] = []

    def set_password() -> None:
        try:
            requested.wait(10)
            url = reverse("admin:auth_user_password_change", args=[newbie.pk])
            pages.append(text(logged_in(mallory).post(url, PASSWORD_FORM, follow=True)))
        finally:
            connection.close()

    threads = [threading.Thread(target=request_grant_and_hold_the_transaction), threading.Thread(target=set_password)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "has access changes awaiting confirmation" in pages[0]
    assert fresh(newbie).check_password("pw")


@pytest.mark.django_db(transaction=True)
def test_a_device_enrolled_while_a_grant_is_being_requested_waits_for_it_and_is_refused() -> None:
    carol = staff("carol", *PEOPLE, CONFIRM)
    mallory = staff("mallory", "otp_totp.view_totpdevice", "otp_totp.add_totpdevice")
    newbie = staff("newbie")
    requested = threading.Event()

    def request_grant_and_hold_the_transaction() -> None:
        try:
            with transaction.atomic():
                change_user_access(carol, newbie.pk, Access(True, True, False, frozenset({CONFIRM}), frozenset()))
                requested.set()
                time.sleep(1.0)  # the device below is posted meanwhile
        finally:
            connection.close()

    statuses: list[int] = []

    def enrol() -> None:
        try:
            requested.wait(10)
            statuses.append(logged_in(mallory).post(reverse(DEVICE_ADD), device_form(newbie)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=request_grant_and_hold_the_transaction), threading.Thread(target=enrol)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [403]  # the form's check passed before the grant was visible; the save's did not
    assert not TOTPDevice.objects.exists()
