"""Money follows people in pairs: the person who sets a client up cannot, alone, route money to it
or release it from it. Through the admin over HTTP, with staff users (never superusers):

- a client created by one person starts inactive; its activation, like its strategy, is a
  change a second person confirms; meanwhile its payments are held;
- a held payment that predates its client's confirmed activation, or that the client's creator
  routes, needs a second person to route;
- whoever requested or confirmed the change that made a wallet the destination cannot approve
  a payout to it.
"""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client as HttpClient
from django.urls import reverse

from payments.models import Client, Payment, PaymentStatus, PayoutAccumulation, PayoutStrategy, RoutingStatus
from payments.money_controls import people_behind_destination
from payments.routing import reroute_held_payment
from payouts.approvals import ApprovalRefusedError, approve_payout
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent, PendingChange, PendingChangeStatus
from pgp_project.operations.pending_changes import confirm_change, request_change

from ..conftest import WALLET, ipn_body, post_ipn
from ..factories import ClientFactory
from ..people import logged_in, permission, staff
from .test_money_controls import (
    ATTACKER_WALLET,
    NEW_WALLET,
    client_form,
    confirm_in_admin,
    credited_payout_awaiting_approval,
)

pytestmark = pytest.mark.django_db

CHANNEL = "-100777"
ONBOARDER_PERMISSIONS = (
    "payments.add_client",
    "payments.change_client",
    "payments.view_client",
    "payments.view_payment",
    "payments.change_payout_destination",
    "payments.change_fees_and_thresholds",
    "payments.resolve_held_payment",
)


def held_payment(payment_id: int, channel: str = CHANNEL, usd: str = "900.00") -> Payment:
    body = ipn_body(
        payment_id=payment_id,
        order_id=f"PGP-7|{channel}",
        price_amount=usd,
        outcome_amount=usd,
        outcome_currency="usdterc20",
    )
    assert post_ipn(HttpClient(), body).status_code == 200
    payment = Payment.objects.get(provider_payment_id=payment_id)
    assert payment.routing_status == RoutingStatus.HELD
    return payment


def create_client_in_admin(http: HttpClient, **values: str) -> Client:
    form = {
        "external_id": CHANNEL,
        "name": "her channel",
        "payout_strategy": PayoutStrategy.INSTANT,
        "payout_threshold_usd": "0",
        "payout_currency": "usdt",
        "payout_network": "eth",
        "wallet_address": ATTACKER_WALLET,
        "fee_percent_override": "",
        "is_active": "on",
        **values,
    }
    response = http.post(reverse("admin:payments_client_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    return Client.objects.get(external_id=form["external_id"])


def reroute_in_admin(http: HttpClient, *payments: Payment) -> list[str]:
    response = http.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "reroute_held", "_selected_action": [p.pk for p in payments]},
        follow=True,
    )
    return [str(m) for m in response.context["messages"]]


def test_one_person_cannot_route_held_payments_to_a_client_she_created() -> None:
    held = [held_payment(900700 + n) for n in range(3)]  # for a channel not yet onboarded
    mallory = staff("mallory", *ONBOARDER_PERMISSIONS)
    http = logged_in(mallory)

    client = create_client_in_admin(http, payout_strategy=PayoutStrategy.THRESHOLD, payout_threshold_usd="50.00")
    assert (client.is_active, client.created_by) == (False, mallory)
    (activation,) = PendingChange.objects.filter(subject_type="client", subject_id=client.pk)
    assert activation.changes == {"is_active": {"old": "False", "new": "True"}}
    assert activation.status == PendingChangeStatus.PENDING

    # Her own routing only records a request; the channel's next payment is held too.
    messages = reroute_in_admin(http, *held)
    assert any("3 payment(s) await a second staff member" in m for m in messages)
    nxt = held_payment(900710)
    assert "inactive" in nxt.hold_reason
    for payment in Payment.objects.filter(pk__in=[p.pk for p in held]):
        assert payment.routing_status == RoutingStatus.HELD
        assert payment.reroute_requested_by == mallory
    assert not PayoutBatch.objects.exists()
    assert not PayoutAccumulation.objects.exists()
    # She cannot confirm her own client's activation.
    confirm_in_admin(http, activation)
    assert not Client.objects.get(pk=client.pk).is_active

    # A second person confirms the activation; the creator still cannot route alone.
    checker = staff("checker", "operations.confirm_change", "payments.view_payment", "payments.resolve_held_payment")
    confirm_in_admin(logged_in(checker), activation)
    assert Client.objects.get(pk=client.pk).is_active
    reroute_in_admin(http, *held)
    assert all(p.routing_status == RoutingStatus.HELD for p in Payment.objects.filter(pk__in=[p.pk for p in held]))

    # The second person routes what the first asked for, and the audit says who did what.
    reroute_in_admin(logged_in(checker), *held)
    routed = Payment.objects.filter(pk__in=[p.pk for p in held])
    assert {p.routing_status for p in routed} == {RoutingStatus.ROUTED}
    assert all(p.reroute_requested_by is None for p in routed)
    for payment in held:
        events = AuditEvent.objects.filter(subject_type="payment", subject_id=payment.pk)
        assert events.get(action="reroute_requested").actor == mallory
        assert events.get(action="reroute").actor == checker
        assert "requested by mallory" in events.get(action="reroute").reason


def test_a_payment_that_predates_its_clients_activation_needs_a_second_person_even_from_a_stranger() -> None:
    payment = held_payment(900720)
    creator = staff("creator", *ONBOARDER_PERMISSIONS)
    client = create_client_in_admin(logged_in(creator), payout_strategy=PayoutStrategy.THRESHOLD,
                                     payout_threshold_usd="50.00", wallet_address=WALLET)  # fmt: skip
    confirm_change(PendingChange.objects.get(subject_id=client.pk).pk, staff("checker", "operations.confirm_change"))

    first = staff("first", "payments.resolve_held_payment")
    assert reroute_held_payment(payment.pk, actor=first).routing_status == RoutingStatus.HELD
    assert reroute_held_payment(payment.pk, actor=first).reroute_requested_by == first  # again: still one person
    assert reroute_held_payment(payment.pk, actor=creator).routing_status == RoutingStatus.HELD  # not a second
    second = staff("second", "payments.resolve_held_payment")
    assert reroute_held_payment(payment.pk, actor=second).routing_status == RoutingStatus.ROUTED
    assert reroute_held_payment(payment.pk, actor=second).routing_status == RoutingStatus.ROUTED  # twice: no-op
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1

    # A payment that arrives after the activation, for another reason held, one person routes.
    late = Payment.objects.create(
        provider_payment_id=900721, status=PaymentStatus.FINISHED, order_id=f"PGP-7|{CHANNEL}",
        price_amount=Decimal("60.00"), price_currency="usd", outcome_amount=Decimal("60.00"),
        outcome_currency="usdterc20", routing_status=RoutingStatus.HELD, hold_reason="overpaid: checked by hand",
        raw_payload={},
    )  # fmt: skip
    assert reroute_held_payment(late.pk, actor=first).routing_status == RoutingStatus.ROUTED


def test_activation_and_strategy_are_guarded_against_the_generic_change_permission(client_row_inactive: Client) -> None:
    generic = staff("generic", "payments.change_client", "payments.view_client")
    http = logged_in(generic)
    url = reverse("admin:payments_client_change", args=[client_row_inactive.pk])
    http.post(url, client_form(client_row_inactive, is_active="on", payout_strategy=PayoutStrategy.INSTANT))
    stored = Client.objects.get(pk=client_row_inactive.pk)
    assert (stored.is_active, stored.payout_strategy) == (False, PayoutStrategy.THRESHOLD)
    assert not PendingChange.objects.exists()

    # With the request permissions it becomes a pending change; a second person applies it.
    requester = staff("requester", "payments.change_client", "payments.view_client",
                      "payments.change_payout_destination", "payments.change_fees_and_thresholds")  # fmt: skip
    logged_in(requester).post(
        url, client_form(client_row_inactive, is_active="on", payout_strategy=PayoutStrategy.INSTANT)
    )
    assert not Client.objects.get(pk=client_row_inactive.pk).is_active
    (change,) = PendingChange.objects.filter(status=PendingChangeStatus.PENDING)
    assert set(change.changes) == {"is_active", "payout_strategy"}
    confirm_change(change.pk, staff("checker", "operations.confirm_change"))
    stored = Client.objects.get(pk=client_row_inactive.pk)
    assert (stored.is_active, stored.payout_strategy) == (True, PayoutStrategy.INSTANT)


@pytest.fixture
def client_row_inactive(db: None) -> Client:
    return ClientFactory.create(external_id="-100901", is_active=False, payout_threshold_usd=Decimal("50.00"))


@pytest.mark.parametrize("role", ["requester", "confirmer"])
def test_who_requested_or_confirmed_a_wallet_change_cannot_approve_payouts_to_it(role: str) -> None:
    client = ClientFactory.create(external_id="-100902", payout_threshold_usd=Decimal("50.00"), wallet_address=WALLET)
    requester = staff("requester", "payments.change_payout_destination", "payouts.approve_payout")
    confirmer = staff("confirmer", "operations.confirm_change", "payouts.approve_payout")
    change = request_change(Client, client.pk, {"wallet_address": NEW_WALLET}, user=requester)
    assert change is not None
    confirm_change(change.pk, confirmer)

    batch = credited_payout_awaiting_approval(client, 900730)
    assert batch.wallet_address == NEW_WALLET
    person = requester if role == "requester" else confirmer
    with pytest.raises(ApprovalRefusedError, match="set up or changed where"):
        approve_payout(batch.pk, person)
    assert PayoutBatch.objects.get(pk=batch.pk).status == BatchStatus.AWAITING_APPROVAL
    assert approve_payout(batch.pk, staff("independent", "payouts.approve_payout")).status == BatchStatus.APPROVED


def test_the_people_behind_a_destination_are_those_since_the_change_that_set_it() -> None:
    creator, a, b, c, d, e = (staff(name) for name in ("creator", "a", "b", "c", "d", "e"))
    for person in (creator, a, c):
        for name in ("payments.change_payout_destination", "payments.change_fees_and_thresholds"):
            person.user_permissions.add(permission(name))
    for person in (b, d, e):
        person.user_permissions.add(permission("operations.confirm_change"))
    creator, a, b, c, d, e = (User.objects.get(pk=u.pk) for u in (creator, a, b, c, d, e))
    client = ClientFactory.create(external_id="-100903", wallet_address=WALLET, created_by=creator)
    assert people_behind_destination(client.pk, WALLET) == {creator.pk}

    _apply(client, {"wallet_address": NEW_WALLET}, a, b)
    assert people_behind_destination(client.pk, NEW_WALLET) == {a.pk, b.pk}
    assert people_behind_destination(client.pk, WALLET) == {creator.pk}  # the wallet it was created with
    _apply(client, {"payout_network": "bsc"}, c, d)  # where the money goes, still to NEW_WALLET
    assert people_behind_destination(client.pk, NEW_WALLET) == {a.pk, b.pk, c.pk, d.pk}
    _apply(client, {"payout_threshold_usd": "75.00"}, c, b)  # not where, only when
    assert people_behind_destination(client.pk, NEW_WALLET) == {a.pk, b.pk, c.pk, d.pk}
    # d stands behind the current destination, so may not confirm the next change of it.
    with pytest.raises(PermissionDenied, match="independent"):
        _apply(client, {"wallet_address": WALLET}, c, d)
    PendingChange.objects.filter(status=PendingChangeStatus.PENDING).delete()
    _apply(client, {"wallet_address": WALLET}, c, e)  # back to the first wallet: set by c and e now
    assert people_behind_destination(client.pk, WALLET) == {c.pk, e.pk}
    assert people_behind_destination(client.pk, NEW_WALLET) == {a.pk, b.pk, c.pk, d.pk}  # older payouts


def _apply(client: Client, values: dict[str, str], requester: User, confirmer: User) -> None:
    change = request_change(Client, client.pk, values, user=requester)
    assert change is not None
    assert confirm_change(change.pk, confirmer).status == PendingChangeStatus.APPLIED


def test_a_client_created_inactive_on_purpose_has_no_activation_request() -> None:
    creator = staff("creator", *ONBOARDER_PERMISSIONS)
    form = {"is_active": ""}
    client = create_client_in_admin(logged_in(creator), **form)
    assert not client.is_active
    assert not PendingChange.objects.filter(subject_id=client.pk).exists()
    assert AuditEvent.objects.get(subject_type="client", subject_id=client.pk, action="created").actor == creator


def test_the_creator_cannot_confirm_a_colleagues_activation_request_of_her_client() -> None:
    mallory = staff("mallory", *ONBOARDER_PERMISSIONS, "operations.confirm_change")
    client = create_client_in_admin(logged_in(mallory), is_active="", payout_strategy=PayoutStrategy.THRESHOLD,
                                    payout_threshold_usd="50.00")  # fmt: skip
    colleague = staff("colleague", "payments.change_payout_destination")
    activation = request_change(Client, client.pk, {"is_active": True}, user=colleague)
    assert activation is not None
    with pytest.raises(PermissionDenied, match="independent"):
        confirm_change(activation.pk, mallory)
    assert not Client.objects.get(pk=client.pk).is_active
    assert PendingChange.objects.get(pk=activation.pk).status == PendingChangeStatus.PENDING
    confirm_change(activation.pk, staff("checker", "operations.confirm_change"))
    assert Client.objects.get(pk=client.pk).is_active


def test_one_person_freezes_a_client_at_once_and_two_unfreeze_it() -> None:
    client = ClientFactory.create(external_id="-100904", payout_threshold_usd=Decimal("50.00"))
    operator = staff("operator", "payments.view_client", "payments.change_client", "payments.change_payout_destination")
    url = reverse("admin:payments_client_change", args=[client.pk])
    assert logged_in(operator).post(url, client_form(client, is_active="")).status_code == 302
    frozen = Client.objects.get(pk=client.pk)
    assert not frozen.is_active
    assert not PendingChange.objects.exists()
    event = AuditEvent.objects.get(subject_type="client", subject_id=client.pk, action="deactivated")
    assert event.actor == operator
    assert "inactive" in held_payment(900740, channel="-100904").hold_reason

    assert logged_in(operator).post(url, client_form(frozen, is_active="on")).status_code == 302
    assert not Client.objects.get(pk=client.pk).is_active  # reactivation waits for a second person
    (reactivation,) = PendingChange.objects.filter(status=PendingChangeStatus.PENDING)
    assert reactivation.changes == {"is_active": {"old": "False", "new": "True"}}


def test_clients_created_before_their_creator_was_recorded_get_it_from_their_history() -> None:
    import importlib

    from django.apps import apps

    backfill = importlib.import_module("payments.migrations.0010_client_created_by_from_history")
    creator, later = staff("creator"), staff("later")
    client = ClientFactory.create(external_id="-100905")
    for actor in (creator, later):  # the first "created" event is the creation
        AuditEvent.objects.create(subject_type="client", subject_id=client.pk, action="created", actor=actor)
    system_made = ClientFactory.create(external_id="-100906")
    backfill.creators_from_history(apps, None)
    assert Client.objects.get(pk=client.pk).created_by == creator
    assert Client.objects.get(pk=system_made.pk).created_by is None
    assert people_behind_destination(client.pk, client.wallet_address) == {creator.pk}


def test_the_external_id_constraint_migration_names_existing_bad_ids_instead_of_failing_obscurely() -> None:
    import importlib

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module("payments.migrations.0008_client_external_id_format")
    migration.refuse_existing_ids_that_break_the_rule(apps, None)  # nothing to refuse
    with connection.cursor() as cursor:  # a row from before the rule (rolled back with the test)
        cursor.execute("ALTER TABLE payments_client DROP CONSTRAINT client_external_id_format")
    ClientFactory.create(external_id="-100 907")
    with pytest.raises(RuntimeError, match="'-100 907'"):
        migration.refuse_existing_ids_that_break_the_rule(apps, None)
