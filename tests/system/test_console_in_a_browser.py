"""The operator's console as a person meets it: a real headless Chromium against the live server.
It logs in, opens the overview, the needs-attention queue, a conversion's timeline and a payout's
approval, approves one payout and rejects another through the pages, and keeps a screenshot of
every page under artifacts/screenshots/ (CI's artefacts)."""

import re
from decimal import Decimal

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from batching.conversion import check_threshold
from batching.models import BatchConversion
from payments.models import Client
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import RuntimeSettings
from pgp_project.operations.selectors import get_runtime_settings

from ..browser import Page, browser  # noqa: F401 - the fixture
from ..conftest import ipn_body, post_ipn
from ..factories import ClientFactory, StaffUserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def credited_client(external_id: str, name: str, usdt: str, payment_id: int) -> Client:
    client = ClientFactory.create(
        external_id=external_id, name=name, payout_threshold_usd=Decimal("5.00"), payout_currency="usdt"
    )
    from django.test import Client as HttpClient

    body = ipn_body(
        payment_id=payment_id,
        order_id=f"PGP-5|{external_id}",
        price_amount=usdt,
        outcome_amount=usdt,
        outcome_currency="usdterc20",
    )
    assert post_ipn(HttpClient(), body).status_code == 200
    return client


@pytest.fixture
def console_data(flow_environment: dict[str, str]) -> dict[str, int]:
    """Two payouts awaiting approval and a conversion with a history, made by the real services."""
    RuntimeSettings.objects.filter(pk=get_runtime_settings().pk).update(payout_approval_limit_usdt=Decimal("10"))
    credited_client("-100771", "Browser channel A", "30.00", 77001)
    credited_client("-100772", "Browser channel B", "40.00", 77002)
    payout_ids = sorted(check_client_payouts())
    assert len(payout_ids) == 2
    assert set(PayoutBatch.objects.values_list("status", flat=True)) == {BatchStatus.AWAITING_APPROVAL}
    ClientFactory.create(external_id="-100773", name="Browser channel C", payout_threshold_usd=Decimal("50.00"))
    from django.test import Client as HttpClient

    body = ipn_body(payment_id=77003, order_id="PGP-5|-100773", price_amount="60.00", outcome_amount="0.02")
    assert post_ipn(HttpClient(), body).status_code == 200
    conversion_id = check_threshold().conversion_id
    assert conversion_id is not None
    return {"approve": payout_ids[0], "reject": payout_ids[1], "conversion": conversion_id}


def test_an_operator_reviews_and_decides_payouts_in_the_browser(
    browser: WebDriver,  # noqa: F811 - the fixture
    live_server,
    console_data: dict[str, int],
    request: pytest.FixtureRequest,
) -> None:
    StaffUserFactory.create(username="operator", password="a-long-operator-password")
    page = Page(browser, live_server.url, request.node.name)
    page.log_in("operator", "a-long-operator-password")

    # The overview is the home page: money by state, the hot wallet, the micro-batch, the chart.
    assert "USDT" in page.text("#overview-money")
    page.find("#overview-chart[data-drawn='true']")  # Chart.js drew it (a picture, not a table)
    page.find("#micro-batch-progress")
    assert "Browser channel A" in page.text("#overview-clients")
    page.screenshot("overview")

    # Needs attention: both payouts wait for approval; the header counts what the queue lists.
    page.click("#attention-link")
    queue = page.find("#attention-queue")
    awaiting = [row for row in page.all("tr.attention-item") if "approval" in row.text.lower()]
    assert len(awaiting) == 2
    assert int(page.text("#attention-count")) == len(page.all("tr.attention-item"))
    before = int(page.text("#attention-count"))
    assert "Browser channel A" in queue.text
    page.screenshot("needs-attention")
    # "View site" leads to this queue, never to a 404.
    page.click("#user-tools a[href*='attention']")
    page.find("#attention-queue")

    # A conversion's timeline: who or what, from, to, why, when (to the second, with timezone).
    page.open(f"/admin/batching/batchconversion/{console_data['conversion']}/change/")
    timeline = page.scroll_to("table.timeline").text
    assert "created" in timeline
    assert "system" in timeline
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", timeline), timeline
    page.screenshot("conversion-timeline")

    # Approve one payout through its approval page.
    page.open(f"/admin/payouts/payoutbatch/{console_data['approve']}/change/")
    assert "awaiting approval" in page.text().lower()
    page.screenshot("payout-awaiting-approval")
    page.open(f"/admin/payouts/payoutbatch/{console_data['approve']}/approve/")
    page.screenshot("payout-approve-confirmation")
    page.click("#content form input[type=submit]")
    page.find(".messagelist")
    assert "approved" in page.text(".messagelist").lower()
    page.screenshot("payout-approved")
    assert PayoutBatch.objects.get(pk=console_data["approve"]).status in (BatchStatus.APPROVED, BatchStatus.CREATED)

    # Reject the other: cancelled, its rows back on the client's balance.
    page.open(f"/admin/payouts/payoutbatch/{console_data['reject']}/reject/")
    page.screenshot("payout-reject-confirmation")
    page.click("#content form input[type=submit]")
    page.find(".messagelist")
    page.screenshot("payout-rejected")
    assert PayoutBatch.objects.get(pk=console_data["reject"]).status == BatchStatus.CANCELLED
    assert BatchConversion.objects.filter(pk=console_data["conversion"]).exists()
    # Reconciliation: the page with its date-range form and the history of runs.
    page.open("/admin/console/reconciliationrun/")
    page.find("#reconcile-form")
    page.screenshot("reconciliation")

    # Both decisions are out of the queue.
    page.open("/admin/console/attention/")
    assert int(page.text("#attention-count")) == before - 2
    page.screenshot("needs-attention-after")
    assert page.severe_console_errors() == []
