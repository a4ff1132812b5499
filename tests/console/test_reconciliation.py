"""Reconciliation and client statements.

End to end: a conversion and a client payout through a real worker, anvil and the sandbox
ChangeNOW reconcile with zero discrepancy; then one transaction sent by hand from the hot
wallet is reported, exactly it, and alerted. Statements: the CSV of a client with a known
history has the right rows and sums.
"""

import csv
import io
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from django.core.management import call_command
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from eth_account import Account
from web3 import Web3

from batching.conversion import check_threshold
from console.models import ReconciliationRun, ReconciliationStatus
from console.reconciliation import reconcile
from console.statements import statement_csv
from payments.models import AccumulationStatus, Client, PayoutAccumulation, PayoutStrategy
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus
from standins.localchain import LocalChain, eip1559_fees, sign_and_send, wait_for_success
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import ipn_body, post_ipn
from ..factories import ClientFactory, HostPaymentFactory, PayoutBatchFactory, StaffUserFactory
from ..flows import wait_final_conversion, wait_final_payout

ETH_WALLET = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil account 3
STRANGER = "0x000000000000000000000000000000000000dEaD"


def post_payment(payment_id: int, client: Client, outcome: str, currency: str, price: str) -> None:
    body = ipn_body(
        payment_id=payment_id,
        order_id=f"PGP-5|{client.external_id}",
        price_amount=price,
        outcome_amount=outcome,
        outcome_currency=currency,
    )
    assert post_ipn(HttpClient(), body).status_code == 200


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_end_to_end_run_reconciles_to_zero_and_an_extra_hot_wallet_send_is_reported(
    celery_worker_process, local_chain: LocalChain, sandbox: SandboxChangeNow, caplog: pytest.LogCaptureFixture
) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/reset", timeout=5).raise_for_status()
    # Blocks are attributed by their timestamps, which anvil may stamp a second behind the clock;
    # the window starts after every block already mined (the chain's deployment among them, when
    # this test is the first to use the chain).
    head = Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.get_block("latest")["timestamp"]
    start = max(timezone.now() - timedelta(seconds=2), datetime.fromtimestamp(head + 1, tz=UTC))
    # A micro-batch conversion of ETH payments ...
    converting = ClientFactory.create(
        external_id="-100801", payout_strategy=PayoutStrategy.THRESHOLD, payout_threshold_usd=Decimal("1000.00")
    )
    for offset in range(4):
        post_payment(80000 + offset, converting, f"0.00{31 + offset}", "eth", "10.49")
    conversion = wait_final_conversion(check_threshold().conversion_id)
    assert conversion.status == BatchStatus.COMPLETED, (conversion.review_reason, conversion.last_error)
    # ... and a client payout (USDT exchanged to ETH at the sandbox) of USDT credited at intake.
    paid = ClientFactory.create(
        external_id="-100802",
        payout_strategy=PayoutStrategy.THRESHOLD,
        payout_threshold_usd=Decimal("20.00"),
        payout_currency="eth",
        payout_network="eth",
        wallet_address=ETH_WALLET,
    )
    post_payment(80100, paid, "12.00", "usdterc20", "12.00")
    post_payment(80101, paid, "9.50", "usdterc20", "9.50")
    (payout_id,) = check_client_payouts()
    payout = wait_final_payout(payout_id)
    assert payout.status == BatchStatus.COMPLETED, (payout.review_reason, payout.last_error)

    end = timezone.now() + timedelta(seconds=5)  # the last block's timestamp is at most now
    run = reconcile(start=start, end=end, triggered_by="test")
    assert run.status == ReconciliationStatus.OK, run.summary["discrepancies"]
    assert run.discrepancy_count == 0
    assert run.summary["chains"]["eth"]["transactions"] == HostPayment.objects.count() == 2
    assert run.summary["exchange"]["checked"] == 2
    assert run.summary["internal"] == {"conversions": 1, "payouts": 1}
    totals = run.summary["chains"]["eth"]["totals"]
    assert Decimal(totals["eth_sent"]["chain"]) == conversion.total_eth
    assert Decimal(totals["usdt_sent"]["chain"]) == payout.total_usdt == Decimal("20.855000")
    assert all(row["chain"] == row["recorded"] for row in totals.values())
    assert Decimal(totals["network_fees"]["chain"]) > 0
    assert "ALERT reconciliation_discrepancy" not in caplog.text

    # The statement of the paid client: its payments, fees, credits, the send and the payout.
    rows = rows_of(statement_csv(paid, start, end))
    assert [row["type"] for row in rows] == [
        "payment",
        "fee",
        "credit",
        "payment",
        "fee",
        "credit",
        "transaction",
        "payout",
    ]
    credits = sum(Decimal(row["amount"]) for row in rows if row["type"] == "credit")
    fees = sum(Decimal(row["amount"]) for row in rows if row["type"] == "fee")
    (sent,) = [row for row in rows if row["type"] == "transaction"]
    (received,) = [row for row in rows if row["type"] == "payout"]
    assert credits + fees == Decimal("21.50")
    assert (Decimal(sent["amount"]), sent["unit"]) == (credits, "USDT")
    assert sent["tx_hash"] == HostPayment.objects.get(pk=payout.host_payment_id).tx_hash
    assert (Decimal(received["amount"]), received["unit"]) == (payout.payout_amount, "ETH")
    assert received["tx_hash"] == payout.payout_tx_hash

    # One send from the hot wallet that no host payment records.
    w3 = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    hot = Account.from_key(local_chain.hot_wallet_private_key)
    extra = sign_and_send(
        w3,
        hot,
        {
            "chainId": local_chain.chain_id,
            "nonce": w3.eth.get_transaction_count(hot.address, "pending"),
            "to": STRANGER,
            "value": 123_456_789,
            "gas": 21_000,
            **eip1559_fees(w3),  # type: ignore[typeddict-item]
        },
    )
    wait_for_success(w3, extra)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        later = reconcile(start=start, end=timezone.now() + timedelta(seconds=5), triggered_by="test")
    assert later.status == ReconciliationStatus.DISCREPANCIES
    (item,) = later.summary["discrepancies"]
    assert item["check"] == "chain"
    assert item["tx_hash"] == extra.to_0x_hex().lower()
    assert "no host payment records" in item["what"]
    assert "0.000000000123456789 ETH to " + STRANGER in item["found"]
    assert Decimal(later.summary["chains"]["eth"]["totals"]["eth_sent"]["chain"]) == conversion.total_eth + Decimal(
        "0.000000000123456789"
    )
    (line,) = [r.getMessage() for r in caplog.records if "ALERT reconciliation_discrepancy" in r.getMessage()]
    assert f"run={later.pk} " in line
    assert " count=1 chain=1 exchange=0 internal=0 " in line
    assert extra.to_0x_hex().lower() in line

    # The same through the command (exit 1) and on the console's page.
    with pytest.raises(SystemExit) as exited:
        call_command(
            "reconcile", "--from", start.isoformat(), "--to", (timezone.now() + timedelta(seconds=5)).isoformat()
        )
    assert exited.value.code == 1
    assert ReconciliationRun.objects.values_list("discrepancy_count", flat=True)[0] == 1
    http = HttpClient()
    http.force_login(StaffUserFactory(username="reconciler"))
    page = http.get(reverse("admin:console_reconciliationrun_changelist") + f"?run={later.pk}")
    assert page.status_code == 200
    assert extra.to_0x_hex().lower().encode() in page.content
    assert b"no host payment records" in page.content
    assert reverse("admin:console_reconciliationrun_changelist").encode() in http.get(reverse("admin:index")).content


@pytest.mark.django_db
def test_statement_of_a_known_history_has_its_rows_and_sums() -> None:
    client = ClientFactory.create(external_id="-100900", payout_threshold_usd=Decimal("20.00"))
    other = ClientFactory.create(external_id="-100901")
    post_payment(90000, client, "12.00", "usdterc20", "12.00")
    post_payment(90001, client, "9.50", "usdterc20", "9.50")
    post_payment(90002, other, "7.00", "usdterc20", "7.00")
    post_payment(90003, client, "0.004", "eth", "11.00")  # pending: a payment, nothing credited yet
    credited = PayoutAccumulation.objects.filter(client=client, status=AccumulationStatus.CONVERTED)
    total_credit = sum(row.credit_usdt for row in credited)
    assert total_credit == Decimal("20.855000")  # 3 % of 21.50 kept
    now = timezone.now()
    host_payment = HostPaymentFactory.create(
        owner_kind="payout",
        asset="usdt",
        amount=total_credit,
        amount_base_units=20_855_000,
        status=HostPaymentStatus.CONFIRMED,
        tx_hash="0x" + "ab" * 32,
        raw_transaction="0x00",
        confirmed_at=now,
    )
    payout = PayoutBatchFactory.create(
        client=client,
        status=BatchStatus.COMPLETED,
        exchange_id="direct-payout-1",
        host_payment=host_payment,
        source_amount=total_credit,
        total_usdt=total_credit,
        row_count=2,
        payout_amount=total_credit,
        payout_tx_hash="0x" + "ab" * 32,
        completed_at=now,
    )
    credited.update(status=AccumulationStatus.PAID_OUT, payout_batch_id=payout.pk, paid_out_at=now)

    today = timezone.localdate()
    http = HttpClient()
    http.force_login(StaffUserFactory(username="accountant"))
    url = reverse("admin:console_statement")
    response = http.get(url, {"client": client.pk, "date_from": today, "date_to": today})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = rows_of(response.content.decode())
    assert [(row["type"], row["payment_id"] or row["payout_id"]) for row in rows] == [
        ("payment", "90000"),
        ("fee", "90000"),
        ("credit", "90000"),
        ("payment", "90001"),
        ("fee", "90001"),
        ("credit", "90001"),
        ("payment", "90003"),
        ("transaction", str(payout.pk)),
        ("payout", str(payout.pk)),
    ]
    by_type: dict[str, Decimal] = {}
    for row in rows:
        if row["unit"] == "USDT":
            by_type[row["type"]] = by_type.get(row["type"], Decimal(0)) + Decimal(row["amount"])
    assert by_type == {
        "payment": Decimal("21.50"),
        "fee": Decimal("0.645000"),
        "credit": Decimal("20.855000"),
        "transaction": Decimal("20.855000"),
        "payout": Decimal("20.855000"),
    }
    assert (rows[0]["amount"], rows[0]["unit"], rows[0]["usd_value"]) == ("12.000000", "USDT", "12.00")
    assert (rows[6]["amount"], rows[6]["unit"], rows[6]["usd_value"]) == ("0.004", "ETH", "11.00")
    assert rows[7]["tx_hash"] == "0x" + "ab" * 32
    # Another day holds nothing; another client's payments are never in it.
    yesterday = today - timedelta(days=1)
    assert (
        rows_of(http.get(url, {"client": client.pk, "date_from": yesterday, "date_to": yesterday}).content.decode())
        == []
    )
    assert "90002" not in response.content.decode()
    # The client page links to it; staff without the client view permission get none.
    page = http.get(reverse("admin:payments_client_change", args=[client.pk]))
    assert f"{url}?client={client.pk}".encode() in page.content
    outsider = HttpClient()
    outsider.force_login(StaffUserFactory(username="outsider", is_superuser=False))
    assert outsider.get(url, {"client": client.pk, "date_from": today, "date_to": today}).status_code == 403
