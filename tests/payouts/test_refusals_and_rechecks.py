"""Nothing waits in silence, through the front door: signed IPNs, a
real worker, the sandbox ChangeNOW with the fault injected, and anvil. Each test asserts the end
state, the reason recorded and, where a person must act, the ALERT line."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.db.models import Sum
from django.test import Client as HttpClient
from django.urls import reverse
from web3 import Web3

from batching.conversion import check_threshold
from batching.models import BatchConversion
from integrations.nowpayments_signature import sign
from payments.models import AccumulationStatus, Client, Payment, PayoutAccumulation
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.merging import merge_waiting_instant_payouts
from payouts.models import HostPayment, PayoutBatch, PayoutKind
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.recovery import run_recovery_sweep
from pgp_project.operations.selectors import get_runtime_settings
from standins.localchain import LocalChain, free_port
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import PROJECT_ROOT, WorkerProcess, ipn_body, post_ipn, wait_until, worker_environment
from ..factories import ClientFactory, StaffUserFactory
from ..flows import (
    alert_lines,
    inject,
    post_eth_payment,
    reset_sandbox,
    sandbox_exchanges,
    wait_final_conversion,
    wait_final_payout,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil account 3


@pytest.fixture(autouse=True)
def clean_sandbox(sandbox: SandboxChangeNow) -> None:
    reset_sandbox(sandbox)


def instant_client(external_id: str) -> Client:
    return ClientFactory.create(
        external_id=external_id,
        payout_strategy="instant",
        payout_threshold_usd=Decimal(0),
        payout_currency="usdc",
        payout_network="eth",
        wallet_address=WALLET,
    )


def eth_payments(client: Client, first_id: int, amounts: list[str]) -> None:
    for offset, amount in enumerate(amounts):
        post_eth_payment(first_id + offset, client_id=client.external_id, eth=amount)


# --- 1. refusals by kind -----------------------------------------------------------------------


def test_instant_payouts_below_the_minimum_wait_visibly_then_are_merged_into_one(
    celery_worker_process: WorkerProcess, local_chain: LocalChain
) -> None:
    client = instant_client("-100811")
    eth_payments(client, 120000, ["0.001", "0.001", "0.001"])  # 0.00097 ETH each after the fee
    waiting_payouts = PayoutBatch.objects.filter(client=client, status=BatchStatus.WAITING_MINIMUM)
    wait_until(lambda: waiting_payouts.count() == 3, timeout=60)
    waiting = list(waiting_payouts)
    for batch in waiting:
        assert "below the exchange minimum" in batch.review_reason
        assert "out_of_range" in batch.last_error
        assert batch.attempts == 1
        assert batch.exchange_id is None
        assert batch.host_payment_id is None

    (merged_id,) = merge_waiting_instant_payouts()
    assert merge_waiting_instant_payouts() == []  # safe to run again
    merged = wait_final_payout(merged_id)
    assert merged.status == BatchStatus.COMPLETED, (merged.review_reason, merged.last_error)
    assert merged.kind == PayoutKind.INSTANT_MERGED
    assert merged.source_amount == Decimal("0.00291") == sum(b.source_amount for b in waiting)
    assert merged.fee_amount == Decimal("0.00009")
    for batch in PayoutBatch.objects.filter(pk__in=[b.pk for b in waiting]):
        assert batch.status == BatchStatus.MERGED
        assert batch.merged_into_id == merged.pk
    sent = Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_transaction(
        HostPayment.objects.get(pk=merged.host_payment_id).tx_hash
    )
    assert sent["value"] == 2_910_000_000_000_000


def test_a_refund_inside_a_merged_payout_stops_only_its_part_and_the_rest_merge_again(
    celery_worker_process: WorkerProcess,
) -> None:
    client = instant_client("-100812")
    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("5")  # 3 USD each alone; the merged 9 USD waits for approval
    runtime.save()
    for offset in range(3):
        body = ipn_body(
            payment_id=125000 + offset,
            order_id=f"PGP-3|{client.external_id}",
            price_amount="3.00",
            outcome_amount="0.001",
        )
        assert post_ipn(HttpClient(), body).status_code == 200
    waiting = PayoutBatch.objects.filter(client=client, status=BatchStatus.WAITING_MINIMUM)
    wait_until(lambda: waiting.count() == 3, timeout=60)
    (merged_id,) = merge_waiting_instant_payouts()
    assert PayoutBatch.objects.get(pk=merged_id).status == BatchStatus.AWAITING_APPROVAL  # nothing sent

    refund = ipn_body(
        payment_id=125000, order_id=f"PGP-3|{client.external_id}", price_amount="3.00", outcome_amount="0.001"
    )
    assert post_ipn(HttpClient(), {**refund, "payment_status": "refunded"}).status_code == 200
    refunded = PayoutBatch.objects.get(payment__provider_payment_id=125000)
    assert refunded.status == BatchStatus.FAILED
    assert "refunded by NOWPayments" in refunded.review_reason
    assert PayoutBatch.objects.get(pk=merged_id).status == BatchStatus.CANCELLED
    assert waiting.count() == 2  # the other two wait again ...
    (again,) = merge_waiting_instant_payouts()  # ... and still pass the minimum together
    assert PayoutBatch.objects.get(pk=again).source_amount == Decimal("0.00194")


def test_the_conversion_check_never_claims_below_the_exchange_minimum(
    celery_worker_process: WorkerProcess, threshold_client: Client
) -> None:
    runtime = get_runtime_settings()
    runtime.micro_batch_threshold_usd = Decimal("5.00")
    runtime.save()
    eth_payments(threshold_client, 130000, ["0.0010"])  # 9.70 USD net: over the threshold, under 5 USD of ETH
    check = check_threshold()
    assert check.conversion_id is None
    assert "minimum" in check.waiting_for
    assert not BatchConversion.objects.exists()
    assert PayoutAccumulation.objects.get().status == AccumulationStatus.PENDING

    eth_payments(threshold_client, 130100, ["0.0010"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert conversion.row_count == 2


def test_an_expired_rate_is_fetched_again(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    before = set(sandbox_exchanges(sandbox))
    inject(sandbox, {"next_quote_ttl_seconds": 0})
    eth_payments(threshold_client, 140000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    assert set(sandbox_exchanges(sandbox)) - before == {conversion.exchange_id}
    assert any("fixed rate expired before the exchange was created" in line for line in celery_worker_process.output)


def test_any_other_refusal_goes_to_review_with_an_alert(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    inject(sandbox, {"refuse": {"count": 1, "path": "/v2/exchange", "error": "not_valid_params"}})
    eth_payments(threshold_client, 150000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.FAILED
    assert "changenow refused (other)" in conversion.review_reason
    assert "nothing was sent" in conversion.review_reason
    assert "not_valid_params" in conversion.last_error
    assert conversion.attempts == 1
    assert conversion.host_payment_id is None
    wait_until(lambda: alert_lines(celery_worker_process, "batch_review"), timeout=10)
    assert any(f"id={conversion.pk} " in line for line in alert_lines(celery_worker_process, "batch_review"))


def test_an_out_of_range_refusal_above_the_minimum_goes_to_review_not_round_and_round(
    celery_worker_process: WorkerProcess, sandbox: SandboxChangeNow
) -> None:
    """`out_of_range` also means above the maximum: a payout that is not below the minimum must
    not give its rows back only for the next check to claim them again."""
    client = ClientFactory.create(
        external_id="-100821", payout_threshold_usd=Decimal("5.00"), payout_currency="eth", wallet_address=WALLET
    )
    body = ipn_body(
        payment_id=160000,
        order_id=f"PGP-5|{client.external_id}",
        price_amount="10.00",
        outcome_amount="10.00",
        outcome_currency="usdterc20",
    )
    assert post_ipn(HttpClient(), body).status_code == 200
    inject(sandbox, {"refuse": {"count": 1, "path": "/v2/exchange/estimated-amount", "error": "out_of_range"}})
    (batch_id,) = check_client_payouts()
    batch = wait_final_payout(batch_id)
    assert batch.status == BatchStatus.FAILED
    assert "changenow refused (out_of_range)" in batch.review_reason
    assert "out_of_range" in batch.last_error
    assert PayoutAccumulation.objects.get(client=client).status == AccumulationStatus.IN_PAYOUT  # held with it
    wait_until(lambda: alert_lines(celery_worker_process, "batch_review"), timeout=10)
    assert check_client_payouts() == []  # nothing claimed again


# --- 3. re-check before money leaves -----------------------------------------------------------


def test_a_rate_about_to_expire_is_never_funded_and_a_fresh_exchange_replaces_it(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow, local_chain: LocalChain
) -> None:
    """The expiry is the validUntil of "Estimated exchange amount" (ChangeNOW API v2,
    https://documenter.getpostman.com/view/8180765/SVfTPnM8): the sandbox, as ChangeNOW, gives
    none on create or by-id, so the batch's stored expiry from the estimate is what is checked."""
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    nonce_before = w3.eth.get_transaction_count(local_chain.hot_wallet_address)
    before = set(sandbox_exchanges(sandbox))
    inject(sandbox, {"next_quote_ttl_seconds": 5})  # far inside the 120 s margin
    eth_payments(threshold_client, 170000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    (abandoned_entry,) = conversion.abandoned_exchange_ids
    provider, abandoned = abandoned_entry.split(":", 1)  # named with its provider
    assert provider == conversion.exchange_provider == "changenow"
    created = {k: v for k, v in sandbox_exchanges(sandbox).items() if k not in before}
    assert set(created) == {abandoned, conversion.exchange_id}
    assert created[abandoned]["status"] in ("new", "waiting")  # never funded
    assert w3.eth.get_transaction_count(local_chain.hot_wallet_address) == nonce_before + 1
    requote = AuditEvent.objects.get(subject_type="conversion", subject_id=conversion.pk, action="requote")
    assert "fixed rate expires" in requote.reason
    assert "nothing was sent" in requote.reason


def test_an_exchange_that_answers_other_than_asked_is_never_funded(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    inject(sandbox, {"answer_payout_address": "0x000000000000000000000000000000000000dEaD"})
    eth_payments(threshold_client, 180000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.FAILED
    assert "does not match what we asked for" in conversion.review_reason
    assert "payout address" in conversion.review_reason
    assert conversion.exchange_id is None  # never the batch's exchange, so never funded
    (recorded,) = conversion.abandoned_exchange_ids  # but recorded, not lost
    assert recorded.removeprefix("changenow:") in sandbox_exchanges(sandbox)
    assert conversion.host_payment_id is None
    assert not HostPayment.objects.exists()


def test_exchange_creation_is_not_retried_inside_one_call(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    before = set(sandbox_exchanges(sandbox))
    inject(sandbox, {"http_500": {"count": 1, "path": "/v2/exchange"}})
    eth_payments(threshold_client, 190000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    # The failed POST was retried by the task (an attempt recorded), not inside the call.
    assert conversion.attempts == 1
    assert "HTTP 500" in conversion.last_error
    assert set(sandbox_exchanges(sandbox)) - before == {conversion.exchange_id}


# --- 4. non-transient failures go to review ----------------------------------------------------


def test_a_distribution_that_does_not_add_up_goes_to_review_with_an_alert(
    celery_worker_process: WorkerProcess, threshold_client: Client
) -> None:
    eth_payments(threshold_client, 200000, ["0.004", "0.004", "0.004"])
    conversion_id = check_threshold().conversion_id
    # An inconsistency under the running batch: one of its rows is held meanwhile.
    row = PayoutAccumulation.objects.filter(batch_conversion_id=conversion_id).order_by("id").first()
    assert row is not None
    PayoutAccumulation.objects.filter(pk=row.pk).update(status=AccumulationStatus.HELD, hold_reason="test")
    conversion = wait_final_conversion(conversion_id)
    assert conversion.status == BatchStatus.FAILED
    assert "DistributionError" in conversion.review_reason
    assert PayoutAccumulation.objects.filter(batch_conversion_id=conversion_id, credit_usdt__isnull=False).count() == 0
    wait_until(lambda: alert_lines(celery_worker_process, "step_failed"), timeout=10)
    assert any(f"id={conversion_id} " in line for line in alert_lines(celery_worker_process, "step_failed"))


# --- 5. intake never answers 5xx for a payment it recorded -------------------------------------


@pytest.fixture
def web_with_the_broker_down(flow_environment: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """The web process, on the test database, with its broker pointing at a port nobody serves."""
    port = free_port()
    env = {**worker_environment(), **flow_environment, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    log = PROJECT_ROOT / "var" / f"web-broker-down-{port}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as output:
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=60, interval=0.5)
        yield url, [str(log)]
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=20)
        log.unlink(missing_ok=True)


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/health/", timeout=5)
    except requests.RequestException:
        return False
    return True


def test_a_recorded_payment_is_answered_200_with_the_broker_down_and_the_sweep_picks_it_up(
    celery_worker_process: WorkerProcess, web_with_the_broker_down: tuple[str, list[str]], settings
) -> None:
    url, (log_path,) = web_with_the_broker_down
    client = instant_client("-100831")
    body = ipn_body(payment_id=210000, order_id=f"PGP-4|{client.external_id}", outcome_amount="0.01")
    raw = json.dumps(body).encode()
    answer = requests.post(
        f"{url}/webhooks/nowpayments/",
        data=raw,
        headers={"Content-Type": "application/json", "x-nowpayments-sig": sign(raw, settings.NOWPAYMENTS_IPN_SECRET)},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert Payment.objects.get(provider_payment_id=210000).routing_status == "routed"
    batch = PayoutBatch.objects.get(client=client)
    assert batch.status == BatchStatus.CREATED
    wait_until(lambda: "ALERT enqueue_failed" in Path(log_path).read_text(), timeout=10)

    # The broker is back for everyone else: the recovery sweep re-drives what was not enqueued.
    settings.PGP_OVERDUE_GRACE_SECONDS = 0
    report = wait_until(lambda: (r := run_recovery_sweep()).redriven.get("payout") and r, timeout=10)
    assert batch.pk in report.redriven["payout"]
    assert wait_final_payout(batch.pk).status == BatchStatus.COMPLETED
    paid = PayoutBatch.objects.filter(client=client).aggregate(total=Sum("source_amount"))["total"]
    assert paid == Decimal("0.0097")


# --- 7. a way back from a refunded exchange ---------------------------------------------------


def test_rows_of_a_refunded_batch_are_released_once_the_refund_is_back_on_chain(
    celery_worker_process: WorkerProcess, threshold_client: Client, sandbox: SandboxChangeNow
) -> None:
    inject(sandbox, {"next_outcome": "refunded"})
    eth_payments(threshold_client, 240000, ["0.004", "0.004", "0.004"])
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.REFUNDED
    http = HttpClient()
    http.force_login(StaffUserFactory.create(username="treasury"))
    http.post(
        reverse("admin:batching_batchconversion_changelist"),
        {"action": "release_refunded", "_selected_action": [conversion.pk]},
    )
    conversion.refresh_from_db()
    assert conversion.status == BatchStatus.CANCELLED
    assert PayoutAccumulation.objects.filter(status=AccumulationStatus.PENDING, batch_conversion_id=None).count() == 3
    released = AuditEvent.objects.get(subject_type="conversion", subject_id=conversion.pk, action="release_refunded")
    assert "returned 0.012 ETH to the hot wallet" in released.reason
    assert str(released.actor) == "treasury"
