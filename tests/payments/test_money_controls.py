"""Money controls need a second person, through the admin, with staff users of
several permission sets (never superusers):

- every money-moving action has its own permission; the generic change_* permissions grant none;
- a change of a client's destination, fee or threshold, or of a runtime limit, is only requested
  by one staff member and applies once a second one confirms it (never the requester), under a
  compare-and-set on the old values;
- an approver never acted on the payout or on the payments it pays;
- every request and decision is in the subject's history with old -> new.
"""

import html
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.test import Client as HttpClient
from django.urls import reverse

from batching.conversion import CONVERSION_FLOW
from batching.models import BatchConversion
from payments.models import Client, Payment, PayoutAccumulation, RoutingStatus
from payments.routing import reroute_held_payment
from payouts.approvals import ApprovalRefusedError, approve_payout, reject_payout
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.operator import cancel_unfunded, redrive
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent, PendingChange, PendingChangeStatus, RuntimeSettings
from pgp_project.operations.pending_changes import confirm_change, request_change
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_action

from ..conftest import WALLET, ipn_body, post_ipn
from ..factories import BatchConversionFactory, ClientFactory, PayoutBatchFactory
from ..people import logged_in, staff

pytestmark = pytest.mark.django_db

NEW_WALLET = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # anvil account 2
ATTACKER_WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil account 3
CLIENT_ADMIN = "admin:payments_client_change"
PENDING_CHANGES = "admin:operations_pendingchange_changelist"


def client_form(client: Client, **changes: str) -> dict[str, str]:
    """The client change form as posted by the admin, with some fields changed."""
    form = {
        "external_id": client.external_id,
        "name": client.name,
        "payout_strategy": client.payout_strategy,
        "payout_threshold_usd": str(client.payout_threshold_usd),
        "payout_currency": client.payout_currency,
        "payout_network": client.payout_network,
        "wallet_address": client.wallet_address,
        "fee_percent_override": "" if client.fee_percent_override is None else str(client.fee_percent_override),
        "is_active": "on",
    }
    form.update(changes)
    return form


def confirm_in_admin(http: HttpClient, change: PendingChange) -> Any:
    return http.post(
        reverse(PENDING_CHANGES), {"action": "confirm_changes", "_selected_action": [change.pk]}, follow=True
    )


def credited_payout_awaiting_approval(client: Client, payment_id: int) -> PayoutBatch:
    """60 USDT credited to the client, and its payout opened above the approval limit."""
    RuntimeSettings.objects.filter(pk=get_runtime_settings().pk).update(payout_approval_limit_usdt=Decimal("10"))
    body = ipn_body(
        payment_id=payment_id,
        order_id=f"PGP-7|{client.external_id}",
        price_amount="60.00",
        outcome_amount="60.00",
        outcome_currency="usdterc20",
    )
    assert post_ipn(HttpClient(), body).status_code == 200
    (batch_id,) = check_client_payouts()
    batch = PayoutBatch.objects.get(pk=batch_id)
    assert batch.status == BatchStatus.AWAITING_APPROVAL
    return batch


@pytest.fixture
def client_row(db: None) -> Client:
    return ClientFactory.create(
        external_id="-100900", name="Guarded channel", payout_threshold_usd=Decimal("50.00"), wallet_address=WALLET
    )


# --- 1. dedicated permissions -------------------------------------------------------------------


def test_every_money_permission_of_the_settings_exists_and_no_generic_one_implies_it() -> None:
    # Generic, but money controls themselves: administering people, and minting API keys.
    people = [*settings.PGP_PEOPLE_ADMINISTRATION_PERMISSIONS, *settings.PGP_API_KEY_PERMISSIONS]
    dedicated = [name for name in settings.PGP_MONEY_PERMISSIONS if name not in people]
    assert len(dedicated) == 8
    for name in settings.PGP_MONEY_PERMISSIONS:
        app_label, codename = name.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), name
    every_generic = [
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.select_related("content_type")
        if p.codename in {f"{verb}_{p.content_type.model}" for verb in ("add", "change", "view", "delete")}
        and f"{p.content_type.app_label}.{p.codename}" not in people
    ]
    assert "payments.change_client" in every_generic
    generic = staff("generic", *every_generic)
    assert not any(generic.has_perm(name) for name in dedicated)


# --- 2. a client's destination and fee: change_client alone changes neither ----------------------


def test_change_client_alone_cannot_redirect_the_wallet_or_zero_the_fee(client_row: Client) -> None:
    attacker = staff("attacker", "payments.view_client", "payments.change_client")
    http = logged_in(attacker)
    page = http.get(reverse(CLIENT_ADMIN, args=[client_row.pk])).content.decode()
    assert 'name="wallet_address"' not in page  # shown read-only, not as an input
    assert 'name="fee_percent_override"' not in page
    response = http.post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(
            client_row,
            wallet_address=ATTACKER_WALLET,
            fee_percent_override="0",
            payout_threshold_usd="1.00",
            external_id="-100666",
            name="renamed",
        ),
    )
    assert response.status_code == 302
    client_row.refresh_from_db()
    assert client_row.name == "renamed"  # the unguarded field saved normally
    assert (client_row.wallet_address, client_row.fee_percent_override, client_row.payout_threshold_usd) == (
        WALLET,
        None,
        Decimal("50.00"),
    )
    assert client_row.external_id == "-100900"
    assert not PendingChange.objects.exists()
    # Nor through the service: the permission is checked where the request is made.
    with pytest.raises(PermissionDenied):
        request_change(Client, client_row.pk, {"wallet_address": ATTACKER_WALLET}, user=attacker)
    # And the next payout still goes to the old wallet.
    batch = credited_payout_awaiting_approval(client_row, 900001)
    assert batch.wallet_address == WALLET


def test_a_wallet_change_by_one_person_applies_only_once_a_second_confirms(client_row: Client) -> None:
    alice = staff(
        "alice", "payments.view_client", "payments.change_client", "payments.change_payout_destination",
        "operations.confirm_change",
    )  # fmt: skip
    bob = staff("bob", "operations.confirm_change")
    http = logged_in(alice)
    page = http.post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(client_row, wallet_address=NEW_WALLET, name="Guarded channel 2", change_reason="client asked"),
        follow=True,
    )
    assert b"awaiting confirmation by a second staff member" in page.content
    client_row.refresh_from_db()
    assert client_row.wallet_address == WALLET  # not yet
    assert client_row.name == "Guarded channel 2"
    change = PendingChange.objects.get()
    assert (change.status, change.requested_by, change.reason) == ("pending", alice, "client asked")
    assert change.changes == {"wallet_address": {"old": WALLET, "new": NEW_WALLET}}
    # A payout opened meanwhile still pays the old, confirmed wallet.
    assert credited_payout_awaiting_approval(client_row, 900101).wallet_address == WALLET

    # Alice cannot confirm her own request, in the admin or through the service.
    refused = confirm_in_admin(http, change)
    assert b"a second staff member must confirm it" in refused.content
    with pytest.raises(PermissionDenied):
        confirm_change(change.pk, alice)
    client_row.refresh_from_db()
    assert client_row.wallet_address == WALLET
    assert PendingChange.objects.get().status == PendingChangeStatus.PENDING

    # Bob sees old -> new and confirms: now it applies.
    listing = logged_in(bob).get(reverse(PENDING_CHANGES)).content.decode()
    assert WALLET in listing
    assert NEW_WALLET in listing
    detail = logged_in(bob).get(reverse("admin:operations_pendingchange_change", args=[change.pk]))
    assert detail.status_code == 200
    assert NEW_WALLET in detail.content.decode()
    confirmed = confirm_in_admin(logged_in(bob), change)
    assert confirmed.status_code == 200
    client_row.refresh_from_db()
    assert client_row.wallet_address == NEW_WALLET
    change.refresh_from_db()
    assert (change.status, change.decided_by) == (PendingChangeStatus.APPLIED, bob)

    # Both steps are in the client's history, who and old -> new, and on its admin page.
    events = AuditEvent.objects.filter(subject_type="client", subject_id=client_row.pk).order_by("id")
    assert [(e.action, e.from_status, e.to_status, e.actor) for e in events] == [
        ("change_requested", "", "pending", alice),
        ("change_confirmed", "pending", "applied", bob),
    ]
    for event in events:
        assert f"wallet_address: '{WALLET}' -> '{NEW_WALLET}'" in event.reason
    assert "requested by alice" in events[1].reason
    client_page = logged_in(alice).get(reverse(CLIENT_ADMIN, args=[client_row.pk])).content.decode()
    assert "change_confirmed" in client_page
    assert "bob" in client_page


def test_fee_and_threshold_need_their_own_permission(client_row: Client) -> None:
    destination_only = staff(
        "dest", "payments.view_client", "payments.change_client", "payments.change_payout_destination"
    )
    http = logged_in(destination_only)
    http.post(reverse(CLIENT_ADMIN, args=[client_row.pk]), client_form(client_row, fee_percent_override="0"))
    assert not PendingChange.objects.exists()
    fees = staff("fees", "payments.view_client", "payments.change_client", "payments.change_fees_and_thresholds")
    logged_in(fees).post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(client_row, fee_percent_override="0", payout_threshold_usd="20"),
    )
    change = PendingChange.objects.get()
    assert change.changes == {
        "fee_percent_override": {"old": None, "new": "0.00"},
        "payout_threshold_usd": {"old": "50.00", "new": "20.00"},
    }
    client_row.refresh_from_db()
    assert (client_row.fee_percent_override, client_row.payout_threshold_usd) == (None, Decimal("50.00"))
    confirm_change(change.pk, staff("checker", "operations.confirm_change"))
    client_row.refresh_from_db()
    assert (client_row.fee_percent_override, client_row.payout_threshold_usd) == (Decimal("0.00"), Decimal("20.00"))


def test_a_stale_change_is_refused_and_changes_nothing(client_row: Client) -> None:
    fees = ("payments.view_client", "payments.change_client", "payments.change_fees_and_thresholds")
    alice, bob = staff("alice", *fees), staff("bob", *fees)
    carol = staff("carol", "operations.confirm_change")
    # Alice asks for fee 5 % and threshold 40; Bob, later, for fee 1 % alone.
    logged_in(alice).post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(client_row, fee_percent_override="5", payout_threshold_usd="40"),
    )
    logged_in(bob).post(reverse(CLIENT_ADMIN, args=[client_row.pk]), client_form(client_row, fee_percent_override="1"))
    alices, bobs = PendingChange.objects.order_by("id")
    assert alices.status == bobs.status == PendingChangeStatus.PENDING
    confirm_in_admin(logged_in(carol), bobs)
    client_row.refresh_from_db()
    assert client_row.fee_percent_override == Decimal("1.00")
    # Alice's change was asked against a fee of None; it is 1 % now: stale, nothing applied.
    page = confirm_in_admin(logged_in(carol), alices)
    assert b"stale" in page.content
    alices.refresh_from_db()
    assert alices.status == PendingChangeStatus.STALE
    assert "fee_percent_override is now '1.00'" in alices.decision_note
    client_row.refresh_from_db()
    assert (client_row.fee_percent_override, client_row.payout_threshold_usd) == (Decimal("1.00"), Decimal("50.00"))
    stale = AuditEvent.objects.get(subject_type="client", subject_id=client_row.pk, action="change_stale")
    assert stale.actor == carol
    # A stale change cannot be confirmed again.
    confirm_in_admin(logged_in(carol), alices)
    assert PendingChange.objects.get(pk=alices.pk).status == PendingChangeStatus.STALE


def test_a_change_no_longer_valid_when_confirmed_is_not_applied(client_row: Client) -> None:
    Client.objects.filter(pk=client_row.pk).update(payout_strategy="instant", payout_threshold_usd=Decimal("30"))
    client_row.refresh_from_db()
    alice = staff("alice", "payments.change_fees_and_thresholds")
    change = request_change(Client, client_row.pk, {"payout_threshold_usd": "0"}, user=alice)
    assert change is not None  # a threshold of 0 is valid for an instant client
    bob = staff("bob", "payments.change_fees_and_thresholds")
    strategy = request_change(Client, client_row.pk, {"payout_strategy": "threshold"}, user=bob)
    assert strategy is not None
    confirm_change(strategy.pk, staff("dave", "operations.confirm_change"))
    client_row.refresh_from_db()
    assert client_row.payout_strategy == "threshold"
    decided = confirm_change(change.pk, staff("carol", "operations.confirm_change"))
    assert decided.status == PendingChangeStatus.STALE
    assert "no longer valid" in decided.decision_note
    client_row.refresh_from_db()
    assert client_row.payout_threshold_usd == Decimal("30.00")


def test_a_request_that_could_never_be_valid_is_refused_at_once(client_row: Client) -> None:
    alice = staff("alice", "payments.view_client", "payments.change_client", "payments.change_payout_destination")
    page = logged_in(alice).post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(client_row, wallet_address="0x70997970c51812dc3a010c7d01b50e0d17dc79C8"),  # checksum broken
    )
    assert page.status_code == 200
    assert b"EIP-55" in page.content
    assert not PendingChange.objects.exists()


def test_a_later_request_of_the_same_fields_supersedes_the_earlier(client_row: Client) -> None:
    alice = staff("alice", "payments.view_client", "payments.change_client", "payments.change_payout_destination")
    first = request_change(Client, client_row.pk, {"wallet_address": NEW_WALLET}, user=alice)
    second = request_change(Client, client_row.pk, {"wallet_address": ATTACKER_WALLET}, user=alice)
    assert first is not None
    assert second is not None
    first.refresh_from_db()
    assert first.status == PendingChangeStatus.SUPERSEDED
    with pytest.raises(Exception, match="superseded, not pending"):
        confirm_change(first.pk, staff("checker", "operations.confirm_change"))
    client_row.refresh_from_db()
    assert client_row.wallet_address == WALLET


def test_the_database_refuses_a_change_applied_by_its_own_requester(client_row: Client) -> None:
    alice = staff("alice", "payments.change_payout_destination")
    change = request_change(Client, client_row.pk, {"wallet_address": NEW_WALLET}, user=alice)
    assert change is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        PendingChange.objects.filter(pk=change.pk).update(
            status="applied", decided_by=alice, decided_at=change.requested_at
        )


def test_creating_a_client_needs_the_destination_and_fee_permissions_and_is_in_its_history() -> None:
    form = {
        "external_id": "-100777",
        "name": "New channel",
        "payout_strategy": "threshold",
        "payout_threshold_usd": "30.00",
        "payout_currency": "usdt",
        "payout_network": "eth",
        "wallet_address": WALLET,
        "is_active": "on",
    }
    clerk = staff("clerk", "payments.view_client", "payments.add_client", "payments.change_client")
    assert logged_in(clerk).post(reverse("admin:payments_client_add"), form).status_code == 403
    assert not Client.objects.filter(external_id="-100777").exists()
    onboarder = staff(
        "onboarder", "payments.view_client", "payments.add_client", "payments.change_client",
        "payments.change_payout_destination", "payments.change_fees_and_thresholds",
    )  # fmt: skip
    assert logged_in(onboarder).post(reverse("admin:payments_client_add"), form).status_code == 302
    created = Client.objects.get(external_id="-100777")
    assert (created.wallet_address, created.is_active) == (WALLET, False)  # active once a second person confirms
    event = AuditEvent.objects.get(subject_type="client", subject_id=created.pk, action="created")
    assert event.actor == onboarder
    assert f"wallet_address='{WALLET}'" in event.reason
    activation = PendingChange.objects.get()
    assert activation.changes == {"is_active": {"old": "False", "new": "True"}}
    # Edited afterwards, it goes through confirmation like any client.
    logged_in(onboarder).post(
        reverse(CLIENT_ADMIN, args=[created.pk]), client_form(created, wallet_address=NEW_WALLET, is_active="")
    )
    created.refresh_from_db()
    assert created.wallet_address == WALLET
    wallet_change = PendingChange.objects.exclude(pk=activation.pk).get()
    assert (wallet_change.status, set(wallet_change.changes)) == (PendingChangeStatus.PENDING, {"wallet_address"})


def test_a_strategy_and_threshold_changed_together_wait_and_apply_together(client_row: Client) -> None:
    Client.objects.filter(pk=client_row.pk).update(payout_strategy="instant", payout_threshold_usd=0)
    client_row.refresh_from_db()
    fees = staff("fees", "payments.view_client", "payments.change_client", "payments.change_fees_and_thresholds")
    page = logged_in(fees).post(
        reverse(CLIENT_ADMIN, args=[client_row.pk]),
        client_form(client_row, payout_strategy="threshold", payout_threshold_usd="30.00"),
    )
    assert page.status_code == 302
    client_row.refresh_from_db()
    assert (client_row.payout_strategy, client_row.payout_threshold_usd) == ("instant", Decimal("0.00"))
    change = PendingChange.objects.get()
    assert set(change.changes) == {"payout_strategy", "payout_threshold_usd"}
    confirm_change(change.pk, staff("carol", "operations.confirm_change"))
    client_row.refresh_from_db()
    assert (client_row.payout_strategy, client_row.payout_threshold_usd) == ("threshold", Decimal("30.00"))


# --- 2b. runtime limits ---------------------------------------------------------------------------


RUNTIME_FORM = {
    "micro_batch_threshold_usd": "20.00",
    "default_fee_percent": "3.00",
    "payout_approval_limit_usdt": "1000000",
}


def test_runtime_limits_need_the_permission_and_a_second_person() -> None:
    get_runtime_settings()
    url = reverse("admin:operations_runtimesettings_change", args=[1])
    generic = staff("generic", "operations.view_runtimesettings", "operations.change_runtimesettings")
    assert logged_in(generic).post(url, RUNTIME_FORM).status_code == 302
    assert get_runtime_settings().payout_approval_limit_usdt == Decimal("1000.000000")
    assert not PendingChange.objects.exists()

    limits = (
        "operations.view_runtimesettings",
        "operations.change_runtimesettings",
        "operations.change_runtime_limits",
    )
    alice = staff("alice", *limits, "operations.confirm_change")
    logged_in(alice).post(url, RUNTIME_FORM)
    assert get_runtime_settings().payout_approval_limit_usdt == Decimal("1000.000000")
    change = PendingChange.objects.get()
    assert change.changes == {"payout_approval_limit_usdt": {"old": "1000.000000", "new": "1000000.000000"}}
    confirm_in_admin(logged_in(alice), change)
    assert get_runtime_settings().payout_approval_limit_usdt == Decimal("1000.000000")
    confirm_in_admin(logged_in(staff("bob", "operations.confirm_change")), change)
    assert get_runtime_settings().payout_approval_limit_usdt == Decimal("1000000.000000")
    page = html.unescape(logged_in(alice).get(url).content.decode())
    for expected in ("change_requested", "change_confirmed", "'1000.000000' -> '1000000.000000'"):
        assert expected in page


def test_a_pending_change_is_counted_as_needing_attention(client_row: Client, settings) -> None:
    request_change(
        Client, client_row.pk, {"wallet_address": NEW_WALLET}, user=staff("a", "payments.change_payout_destination")
    )
    settings.PGP_HEALTH_TOKEN = "operators-health-token"  # the details are for operators only
    response = HttpClient().get("/health/", HTTP_AUTHORIZATION="Bearer operators-health-token")
    breakdown = response.json()["checks"]["needs_attention"]["breakdown"]
    assert breakdown["change_awaiting_confirmation"] == 1


# --- 1b. approve / reject / operate need their dedicated permission -----------------------------


def test_generic_change_payoutbatch_cannot_approve_or_reject(client_row: Client) -> None:
    batch = credited_payout_awaiting_approval(client_row, 900201)
    generic = staff("generic", "payouts.view_payoutbatch", "payouts.change_payoutbatch")
    http = logged_in(generic)
    assert http.get(reverse("admin:payouts_payoutbatch_approve", args=[batch.pk])).status_code == 403
    assert http.post(reverse("admin:payouts_payoutbatch_approve", args=[batch.pk])).status_code == 403
    assert http.post(reverse("admin:payouts_payoutbatch_reject", args=[batch.pk])).status_code == 403
    with pytest.raises(ApprovalRefusedError):
        approve_payout(batch.pk, generic)
    with pytest.raises(ApprovalRefusedError):
        reject_payout(batch.pk, generic)
    batch.refresh_from_db()
    assert (batch.status, batch.approved_by, batch.rejected_by) == (BatchStatus.AWAITING_APPROVAL, None, None)

    approver = staff("approver", "payouts.approve_payout")
    assert logged_in(approver).post(reverse("admin:payouts_payoutbatch_approve", args=[batch.pk])).status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.approved_by) == (BatchStatus.APPROVED, approver)


def test_generic_change_permissions_cannot_redrive_cancel_or_reroute() -> None:
    conversion = BatchConversionFactory.create()
    changelist = reverse("admin:batching_batchconversion_changelist")
    generic = staff("generic", "batching.view_batchconversion", "batching.change_batchconversion")
    for action in ("redrive", "cancel_unfunded"):
        logged_in(generic).post(changelist, {"action": action, "_selected_action": [conversion.pk]})
    assert BatchConversion.objects.get(pk=conversion.pk).status == BatchStatus.CREATED
    assert not AuditEvent.objects.filter(subject_type="conversion").exists()
    operator = staff("operator", "batching.view_batchconversion", "payouts.operate_batch")
    logged_in(operator).post(changelist, {"action": "cancel_unfunded", "_selected_action": [conversion.pk]})
    assert BatchConversion.objects.get(pk=conversion.pk).status == BatchStatus.CANCELLED

    payout = PayoutBatchFactory.create()
    payouts = reverse("admin:payouts_payoutbatch_changelist")
    logged_in(staff("generic2", "payouts.view_payoutbatch", "payouts.change_payoutbatch")).post(
        payouts, {"action": "cancel_unfunded", "_selected_action": [payout.pk]}
    )
    assert PayoutBatch.objects.get(pk=payout.pk).status == BatchStatus.CREATED

    ClientFactory(external_id="-100555", is_active=False)
    post_ipn(HttpClient(), ipn_body(payment_id=900301, order_id="PGP-7|-100555"))
    held = Payment.objects.get(provider_payment_id=900301)
    Client.objects.filter(external_id="-100555").update(is_active=True)
    payments = reverse("admin:payments_payment_changelist")
    logged_in(staff("generic3", "payments.view_payment", "payments.change_payment")).post(
        payments, {"action": "reroute_held", "_selected_action": [held.pk]}
    )
    assert Payment.objects.get(pk=held.pk).routing_status == RoutingStatus.HELD
    logged_in(staff("resolver", "payments.view_payment", "payments.resolve_held_payment")).post(
        payments, {"action": "reroute_held", "_selected_action": [held.pk]}
    )
    assert Payment.objects.get(pk=held.pk).routing_status == RoutingStatus.ROUTED


# --- 3. the approver is a second person -----------------------------------------------------------


def test_the_operator_who_rerouted_a_payment_cannot_approve_its_payout() -> None:
    client = ClientFactory.create(external_id="-100950", payout_threshold_usd=Decimal("50.00"), is_active=False)
    post_ipn(
        HttpClient(),
        ipn_body(
            payment_id=900401,
            order_id="PGP-7|-100950",
            price_amount="60.00",
            outcome_amount="60.00",
            outcome_currency="usdterc20",
        ),
    )
    payment = Payment.objects.get(provider_payment_id=900401)
    assert payment.routing_status == RoutingStatus.HELD  # its client was inactive
    Client.objects.filter(pk=client.pk).update(is_active=True)
    mallory = staff(
        "mallory", "payments.view_payment", "payments.resolve_held_payment", "payouts.view_payoutbatch",
        "payouts.approve_payout",
    )  # fmt: skip
    http = logged_in(mallory)
    http.post(
        reverse("admin:payments_payment_changelist"), {"action": "reroute_held", "_selected_action": [payment.pk]}
    )
    assert PayoutAccumulation.objects.get(payment=payment).status == "converted"
    RuntimeSettings.objects.filter(pk=get_runtime_settings().pk).update(payout_approval_limit_usdt=Decimal("10"))
    (batch_id,) = check_client_payouts()
    assert PayoutBatch.objects.get(pk=batch_id).client == client

    page = http.post(reverse("admin:payouts_payoutbatch_approve", args=[batch_id]), follow=True)
    assert b"a second person must approve it" in page.content
    with pytest.raises(ApprovalRefusedError):
        approve_payout(batch_id, mallory)
    batch = PayoutBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.approved_by) == (BatchStatus.AWAITING_APPROVAL, None)
    assert not AuditEvent.objects.filter(subject_type="payout", action="approve").exists()

    second = staff("second", "payouts.approve_payout")
    assert approve_payout(batch_id, second).approved_by == second


def test_the_operator_who_accepted_a_partial_payment_cannot_approve_its_payout(client_row: Client) -> None:
    for status in ("waiting", "partially_paid"):
        body = ipn_body(
            payment_id=900501,
            payment_status=status,
            order_id=f"PGP-7|{client_row.external_id}",
            price_amount="120.00",
            pay_amount="120",
            pay_currency="usdterc20",
            actually_paid="60",
            outcome_amount="60",
            outcome_currency="usdterc20",
        )
        assert post_ipn(HttpClient(), body).status_code == 200
    payment = Payment.objects.get(provider_payment_id=900501)
    assert payment.routing_status == RoutingStatus.HELD
    operator = staff("operator", "payments.view_payment", "payments.resolve_held_payment", "payouts.approve_payout")
    logged_in(operator).post(
        reverse("admin:payments_payment_changelist"), {"action": "accept_partial", "_selected_action": [payment.pk]}
    )
    assert Payment.objects.get(pk=payment.pk).accepted_price_amount == Decimal("60.00")
    RuntimeSettings.objects.filter(pk=get_runtime_settings().pk).update(payout_approval_limit_usdt=Decimal("10"))
    (batch_id,) = check_client_payouts()
    with pytest.raises(ApprovalRefusedError):
        approve_payout(batch_id, operator)
    assert PayoutBatch.objects.get(pk=batch_id).status == BatchStatus.AWAITING_APPROVAL
    # Rejecting sends nothing: it stays open to them.
    assert reject_payout(batch_id, operator).status == BatchStatus.CANCELLED


def test_a_person_in_the_payouts_own_history_cannot_approve_it(client_row: Client) -> None:
    batch = credited_payout_awaiting_approval(client_row, 900601)
    colleague = staff("colleague", "payouts.approve_payout")
    record_action("payout", batch.pk, action="note", status=batch.status, actor=colleague, reason="looked into it")
    with pytest.raises(ApprovalRefusedError, match="a second person must approve it"):
        approve_payout(batch.pk, colleague)
    assert approve_payout(batch.pk, staff("other", "payouts.approve_payout")).status == BatchStatus.APPROVED


def test_the_operator_services_check_the_dedicated_permission_of_a_person_too() -> None:
    conversion = BatchConversionFactory.create()
    generic = staff("generic", "batching.change_batchconversion", "payments.change_payment")
    with pytest.raises(PermissionDenied):
        redrive(CONVERSION_FLOW, [conversion.pk], actor=generic)
    with pytest.raises(PermissionDenied):
        cancel_unfunded(CONVERSION_FLOW, conversion.pk, reason="no", actor=generic)
    post_ipn(HttpClient(), ipn_body(payment_id=900701, order_id="PGP-7|-100556"))
    ClientFactory(external_id="-100556")
    held = Payment.objects.get(provider_payment_id=900701)
    with pytest.raises(PermissionDenied):
        reroute_held_payment(held.pk, actor=generic)
    assert Payment.objects.get(pk=held.pk).routing_status == RoutingStatus.HELD
    assert BatchConversion.objects.get(pk=conversion.pk).status == BatchStatus.CREATED
    assert not AuditEvent.objects.filter(subject_type="conversion").exists()
    # The system (no person) is never asked for a permission.
    assert cancel_unfunded(CONVERSION_FLOW, conversion.pk, reason="deadline").status == BatchStatus.CANCELLED
