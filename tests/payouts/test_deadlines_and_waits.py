"""Deadlines fire for every open item, and what waits says so: a real worker per
test (each with the environment its case needs), the sandbox ChangeNOW and anvil."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from batching.conversion import check_threshold
from batching.models import BatchConversion
from payments.models import Client
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPaymentWait, PayoutBatch
from pgp_project.operations.recovery import run_recovery_sweep
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import wait_until
from ..factories import PaymentFactory, PayoutBatchFactory, StaffUserFactory
from ..flows import alert_lines, host_payment_of_conversion, inject, post_eth_payment, reset_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    reset_sandbox(sandbox)


def needs_attention() -> dict[str, int]:
    """As /health/ shows it to an operator (the public sees only up or down)."""
    operator = HttpClient()
    operator.force_login(StaffUserFactory.create(username="health-reader", is_superuser=False))
    return operator.get("/health/").json()["checks"]["needs_attention"]["breakdown"]


def conversion_of_three_payments(client: Client, first_id: int) -> int:
    for offset in range(3):
        post_eth_payment(first_id + offset, client_id=client.external_id, eth="0.004")
    conversion_id = check_threshold().conversion_id
    assert conversion_id is not None
    return conversion_id


def test_an_exchange_held_in_verifying_alerts_and_goes_to_review_at_its_deadline(
    start_worker, threshold_client: Client, sandbox: SandboxChangeNow, settings, caplog: pytest.LogCaptureFixture
) -> None:
    worker = start_worker()
    settings.PGP_BATCH_DEADLINE_SECONDS = 20
    inject(sandbox, {"next_outcome": "verifying"})
    conversion_id = conversion_of_three_payments(threshold_client, 220000)
    conversion = wait_until(
        lambda: BatchConversion.objects.filter(pk=conversion_id, exchange_status="verifying").first(), timeout=20
    )
    assert conversion.status == BatchStatus.EXCHANGING  # funds are at the exchange, which holds them
    wait_until(lambda: alert_lines(worker, "exchange_verifying"), timeout=10)
    assert len(alert_lines(worker, "exchange_verifying")) == 1  # not one per poll

    # It keeps polling on time, so only the deadline can end the wait.
    assert conversion.deadline_at is not None
    wait_until(lambda: conversion.deadline_at < timezone.now(), timeout=25)
    with caplog.at_level("ERROR"):
        report = run_recovery_sweep()
    assert report.expired["conversion"] == [conversion_id]
    conversion = BatchConversion.objects.get(pk=conversion_id)
    assert conversion.status == BatchStatus.FAILED
    assert "still 'verifying'" in conversion.review_reason
    assert "resume" in conversion.review_reason
    assert f"ALERT batch_deadline_passed kind=conversion id={conversion_id} state=exchanging" in caplog.text
    assert needs_attention()["conversion_in_review"] == 1


def test_a_payment_waiting_for_fees_under_the_cap_alerts_on_a_throttle_and_counts_in_health(
    start_worker, threshold_client: Client, settings, caplog: pytest.LogCaptureFixture
) -> None:
    worker = start_worker(ETH_MAX_FEE_GWEI="0", PGP_HOST_PAYMENT_DEADLINE_SECONDS="3")
    conversion_id = conversion_of_three_payments(threshold_client, 230000)
    host_payment = wait_until(
        lambda: host_payment_of_conversion(conversion_id, waiting_for=HostPaymentWait.FEE_CAP), timeout=30
    )
    assert host_payment.status == "created"
    assert "above the cap" in host_payment.last_error
    assert BatchConversion.objects.get(pk=conversion_id).status == BatchStatus.FUNDING  # waiting, not failed
    time.sleep(3)  # looked at again every second meanwhile; alerted once
    assert len(alert_lines(worker, "host_payment_fee_cap")) == 1
    assert needs_attention()["host_payment_waiting_for_fee_cap"] == 1

    # Past its own deadline it is alerted as overdue too (the throttle allows a new line now).
    settings.PGP_ALERT_REPEAT_SECONDS = 0
    with caplog.at_level("ERROR"):
        run_recovery_sweep()
    assert f"ALERT host_payment_overdue host_payment={host_payment.pk} state=created waiting_for=fee_cap" in caplog.text
    assert needs_attention()["host_payment_overdue"] == 1


def test_a_payout_waiting_below_the_minimum_past_its_deadline_is_alerted_and_still_waits(
    threshold_client: Client, settings, caplog: pytest.LogCaptureFixture
) -> None:
    payout = PayoutBatchFactory.create(
        kind="instant",
        client=threshold_client,
        payment=PaymentFactory.create(),
        status=BatchStatus.WAITING_MINIMUM,
        total_usdt=None,
        row_count=0,
        source_currency="eth",
        source_amount=Decimal("0.001"),
        exchange_provider="changenow",
        deadline_at=timezone.now() - timedelta(seconds=1),
    )
    with caplog.at_level("ERROR"):
        report = run_recovery_sweep()
        run_recovery_sweep()  # throttled: one line
    assert report.expired["payout"] == []
    assert PayoutBatch.objects.get(pk=payout.pk).status == BatchStatus.WAITING_MINIMUM  # can still be merged
    assert caplog.text.count(f"ALERT payout_below_minimum_overdue kind=payout id={payout.pk} ") == 1
