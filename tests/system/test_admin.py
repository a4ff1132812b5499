"""Every admin list and change page renders for staff; money cannot be edited by hand."""

from decimal import Decimal
from typing import cast

import pytest
from django.contrib import admin
from django.db.models import Model
from django.test import Client as HttpClient
from django.urls import reverse

from batching.models import BatchConversion
from payments.models import Client, Payment, PaymentEvent, PayoutAccumulation
from payouts.models import HostPayment, PayoutBatch
from pgp_project.operations.models import JobHeartbeat, PendingChange
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.services import job_heartbeat

from ..conftest import ipn_body, post_ipn
from ..factories import (
    BatchConversionFactory,
    ClientFactory,
    HostPaymentFactory,
    PayoutBatchFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db: None) -> HttpClient:
    http = HttpClient()
    http.force_login(StaffUserFactory(username="operator"))
    return http


@pytest.fixture
def one_of_everything(threshold_client: Client) -> None:
    http = HttpClient()
    post_ipn(http, ipn_body(payment_id=1))
    post_ipn(http, ipn_body(payment_id=2, outcome_currency="usdterc20", outcome_amount=20))
    post_ipn(http, ipn_body(payment_id=3), signature="bad")
    conversion = BatchConversionFactory.create(host_payment=HostPaymentFactory(owner_kind="conversion"))
    PayoutAccumulation.objects.filter(payment__provider_payment_id=1).update(
        status="swapping", batch_conversion_id=conversion.pk
    )
    PayoutBatchFactory(
        client=threshold_client,
        host_payment=HostPaymentFactory(
            owner_kind="payout", asset="usdt", amount=Decimal("19.4"), amount_base_units=19_400_000
        ),
    )
    get_runtime_settings()
    with job_heartbeat("operations.recovery_sweep"):
        pass


def test_every_admin_list_and_change_page_renders(staff_client: HttpClient, one_of_everything: None) -> None:
    checked = 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = staff_client.get(changelist)
        assert response.status_code == 200, changelist
        obj = model_admin.get_queryset(response.wsgi_request).first()
        if obj is None:
            continue
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        response = staff_client.get(change)
        assert response.status_code == 200, change
        checked += 1
    # Ours, at least: clients, payments, events, rows, conversions, payout batches, host payments,
    # runtime settings, heartbeats (plus Beat's and auth's).
    assert checked >= 9


def test_accumulation_list_shows_totals_of_the_filtered_set(staff_client: HttpClient, one_of_everything: None) -> None:
    url = reverse("admin:payments_payoutaccumulation_changelist")
    everything = staff_client.get(url)
    assert everything.context["totals"]["rows"] == 2
    assert everything.context["totals"]["gross_usd"] == Decimal("39.98")
    converted = staff_client.get(url, {"status__exact": "converted"})
    assert converted.context["totals"]["rows"] == 1
    assert converted.context["totals"]["credit_usdt"] == Decimal("19.400000")
    assert b"accumulation-totals" in converted.content
    assert staff_client.get(url, {"q": "1"}).status_code == 200
    assert staff_client.get(url, {"q": "not-a-number"}).status_code == 200


@pytest.mark.parametrize(
    "model", [Payment, PaymentEvent, PayoutAccumulation, BatchConversion, PayoutBatch, HostPayment]
)
def test_money_and_statuses_are_read_only(
    staff_client: HttpClient, one_of_everything: None, model: type[Model]
) -> None:
    opts = model._meta
    obj = model._default_manager.first()
    assert obj is not None
    assert staff_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403
    change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    before = model._default_manager.filter(pk=obj.pk).values().get()
    response = staff_client.post(change_url, {"status": "completed", "amount": "999"})
    assert response.status_code == 403
    assert model._default_manager.filter(pk=obj.pk).values().get() == before


def test_client_admin_refuses_a_mistyped_evm_address(staff_client: HttpClient) -> None:
    url = reverse("admin:payments_client_add")
    form = {
        "external_id": "-100777",
        "name": "New channel",
        "payout_strategy": "threshold",
        "payout_threshold_usd": "30.00",
        "payout_currency": "usdt",
        "payout_network": "eth",
        "wallet_address": "0x70997970c51812dc3a010c7d01b50e0d17dc79C8",  # checksum broken
        "is_active": "on",
    }
    response = staff_client.post(url, form)
    assert response.status_code == 200
    assert b"EIP-55" in response.content
    assert not Client.objects.filter(external_id="-100777").exists()
    form["wallet_address"] = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert staff_client.post(url, form).status_code == 302
    assert Client.objects.filter(external_id="-100777").exists()


def test_reroute_action_routes_held_payment(staff_client: HttpClient, threshold_client: Client) -> None:
    # Held while its client was inactive; activated since (by the system: no second person needed).
    ClientFactory(external_id="-100555", payout_threshold_usd=10, is_active=False)
    post_ipn(HttpClient(), ipn_body(order_id="PGP-7|-100555"))
    payment = Payment.objects.get()
    assert payment.routing_status == "held"
    Client.objects.filter(external_id="-100555").update(is_active=True)
    url = reverse("admin:payments_payment_changelist")
    response = staff_client.post(url, {"action": "reroute_held", "_selected_action": [payment.pk]})
    assert response.status_code == 302
    payment.refresh_from_db()
    assert payment.routing_status == "routed"
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1


def test_runtime_settings_edit_takes_effect_without_restart(staff_client: HttpClient) -> None:
    get_runtime_settings()
    url = reverse("admin:operations_runtimesettings_change", args=[1])
    response = staff_client.post(
        url,
        {
            "micro_batch_threshold_usd": "5.00",
            "default_fee_percent": "15.00",
            "payout_approval_limit_usdt": "500",
        },
    )
    assert response.status_code == 302
    # A runtime limit is a money control: it applies once a second staff member confirms it.
    change = PendingChange.objects.get(subject_type="runtime_settings", status="pending")
    second = HttpClient()
    second.force_login(StaffUserFactory(username="second-operator"))
    confirmed = second.post(
        reverse("admin:operations_pendingchange_changelist"),
        {"action": "confirm_changes", "_selected_action": [change.pk]},
    )
    assert confirmed.status_code == 302
    assert get_runtime_settings().micro_batch_threshold_usd == Decimal("5.00")
    assert JobHeartbeat.objects.count() == 0


def test_conversion_page_shows_exchange_host_payment_amounts_and_rows(
    staff_client: HttpClient, one_of_everything: None
) -> None:
    conversion = BatchConversion.objects.get()
    BatchConversion.objects.filter(pk=conversion.pk).update(
        status="exchanging",
        exchange_id="cn-exchange-42",
        payin_address="0x1111111111111111111111111111111111111111",
        expected_amount=Decimal("30.000000"),
        received_usdt=Decimal("29.950000"),
    )
    HostPayment.objects.filter(pk=conversion.host_payment_id).update(
        status="signed", tx_hash="0x" + "ab" * 32, raw_transaction="0x02f8", confirmations=2
    )
    page = staff_client.get(reverse("admin:batching_batchconversion_change", args=[conversion.pk]))
    assert page.status_code == 200
    html = page.content.decode().lower()
    for expected in (
        "cn-exchange-42",
        "0x1111111111111111111111111111111111111111",
        "0x" + "ab" * 32,
        "received 29.950000 usdt of 30.000000 usdt expected (-0.050000 usdt)",
        "distribution per row",
    ):
        assert expected in html


def test_redrive_action_enqueues_the_next_step_and_twice_is_harmless(
    staff_client: HttpClient, one_of_everything: None, settings, django_capture_on_commit_callbacks
) -> None:
    import redis

    conversion = BatchConversion.objects.get()
    queue = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE)
    url = reverse("admin:batching_batchconversion_changelist")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = staff_client.post(url, {"action": "redrive", "_selected_action": [conversion.pk]})
        assert response.status_code == 302
    assert queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE) == cast(int, before) + 2
    conversion.refresh_from_db()
    assert conversion.status == "created"  # the admin only enqueues; the worker does the step
