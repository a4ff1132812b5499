"""The admin pages as operators read them through the Django test client
with staff users of exact permission sets (never superusers):

- amounts with their unit and places, never an 18-digit tail; gas in gwei;
- one timeline per object, to the second, with its timezone and who did it;
- a payment links onward to its row, conversion, payout and their transactions, and each links back;
- every status with its reason and last error (a stuck payout says why);
- hashes and addresses linked to the block explorer when one is configured, with a copy button;
- bulk approve and reject of payouts, each only after a confirmation page, reporting refusals;
- date-range filters and date hierarchies on the lists.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from batching.models import BatchConversion
from evm_chain.models import EvmTransfer
from payments.models import Client, Payment, PayoutAccumulation, RoutingStatus
from payouts.client_payouts import check_client_payouts
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, PayoutBatch
from pgp_project.operations.models import RuntimeSettings
from pgp_project.operations.selectors import get_runtime_settings

from ..conftest import ipn_body, post_ipn
from ..factories import BatchConversionFactory, ClientFactory, HostPaymentFactory, PayoutBatchFactory
from ..people import logged_in, staff

pytestmark = pytest.mark.django_db

SECONDS_AND_ZONE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC")
# A decimal with a long tail of zeros, as the raw 18-place fields printed (45.605770000000000000).
ZERO_TAIL = re.compile(r"\d\.\d*0{7,}(?!\d)")
TX_HASH = "0x" + "ab" * 32
PAYOUT_TX = "0x" + "cd" * 32
CONVERSION_TX = "0x" + "ef" * 32
PAYIN = "0x1111111111111111111111111111111111111111"
EXPLORERS = {"eth": {"tx": "https://etherscan.io/tx/{}", "address": "https://etherscan.io/address/{}"}}


VIEW_ALL = (
    "payments.view_client",
    "payments.view_payment",
    "payments.view_payoutaccumulation",
    "batching.view_batchconversion",
    "payouts.view_payoutbatch",
    "payouts.view_hostpayment",
    "payouts.view_hostpaymentcandidate",
)


@pytest.fixture
def viewer(db: None) -> HttpClient:
    return logged_in(staff("viewer", *VIEW_ALL))


@pytest.fixture
def traced(threshold_client: Client) -> dict[str, int]:
    """One ETH payment through the real intake, its row converted by a conversion and paid out by
    a payout, each batch funded by a host payment with its transaction on chain."""
    assert post_ipn(HttpClient(), ipn_body(payment_id=5077125051)).status_code == 200
    payment = Payment.objects.get(provider_payment_id=5077125051)
    conversion_funding = HostPaymentFactory.create(
        owner_kind="conversion", status="confirmed", tx_hash=TX_HASH, raw_transaction="0x02", confirmations=3
    )
    conversion = BatchConversionFactory.create(
        host_payment=conversion_funding,
        status="completed",
        exchange_id="cn-1",
        payin_address=PAYIN,
        total_eth=Decimal("0.006123450000000000"),
        expected_amount=Decimal("19.500000000000000000"),
        received_usdt=Decimal("19.400000"),
        fee_usdt_total=Decimal("0.582000"),
        credit_usdt_total=Decimal("18.818000"),
        payout_tx_hash=CONVERSION_TX,
        completed_at=timezone.now(),
    )
    payout_funding = HostPaymentFactory.create(
        owner_kind="payout",
        asset="usdt",
        amount=Decimal("18.818"),
        amount_base_units=18_818_000,
        status="confirmed",
        tx_hash="0x" + "12" * 32,
        raw_transaction="0x02",
    )
    EvmTransfer.objects.create(
        host_payment=payout_funding,
        chain="eth",
        sender=payout_funding.from_address,
        nonce=7,
        gas_limit=65_000,
        max_fee_per_gas=Decimal(30 * 10**9),
        max_priority_fee_per_gas=Decimal(1_500_000_000),
    )
    payout = PayoutBatchFactory.create(
        client=threshold_client,
        host_payment=payout_funding,
        status="funding",
        exchange_id="direct-1",
        total_usdt=Decimal("18.818000"),
        source_amount=Decimal("18.818000000000000000"),
        payout_tx_hash=PAYOUT_TX,
    )
    PayoutAccumulation.objects.filter(payment=payment).update(
        status="in_payout",
        batch_conversion_id=conversion.pk,
        payout_batch_id=payout.pk,
        usdt_amount=Decimal("19.400000"),
        fee_usdt=Decimal("0.582000"),
        credit_usdt=Decimal("18.818000"),
        converted_at=timezone.now(),
    )
    row = PayoutAccumulation.objects.get(payment=payment)
    return {
        "payment": payment.pk,
        "row": row.pk,
        "conversion": conversion.pk,
        "payout": payout.pk,
        "conversion_funding": conversion_funding.pk,
        "payout_funding": payout_funding.pk,
    }


def change_url(name: str, pk: int) -> str:
    return reverse(f"admin:{name}_change", args=[pk])


def page(http: HttpClient, url: str, **params: str) -> str:
    response = http.get(url, params)
    assert response.status_code == 200, url
    return response.content.decode()


# --- money shown as money ------------------------------------------------------------------------


def test_amounts_on_lists_and_change_pages_have_units_and_no_zero_tails(
    viewer: HttpClient, traced: dict[str, int]
) -> None:
    pages = {
        reverse("admin:payments_payment_changelist"): ["19.99 USD", "0.00612345 ETH"],
        change_url("payments_payment", traced["payment"]): ["19.99 USD", "0.00612345 ETH", "0.0062 ETH"],
        reverse("admin:payments_payoutaccumulation_changelist"): ["19.99 USD", "0.00612345 ETH", "18.818000 USDT"],
        change_url("payments_payoutaccumulation", traced["row"]): ["0.60 USD", "19.39 USD", "18.818000 USDT"],
        reverse("admin:batching_batchconversion_changelist"): ["0.00612345 ETH", "19.400000 USDT"],
        change_url("batching_batchconversion", traced["conversion"]): [
            "0.00612345 ETH",
            "received 19.400000 USDT of 19.500000 USDT expected (-0.100000 USDT)",
            "0.582000 USDT",
        ],
        reverse("admin:payouts_payoutbatch_changelist"): ["18.818000 USDT"],
        change_url("payouts_payoutbatch", traced["payout"]): ["18.818000 USDT"],
        reverse("admin:payouts_hostpayment_changelist"): ["0.01 ETH on eth", "18.818000 USDT on eth"],
        change_url("payouts_hostpayment", traced["payout_funding"]): ["18.818000 USDT", "30 gwei", "1.5 gwei"],
    }
    for url, expected in pages.items():
        html = page(viewer, url)
        for text in expected:
            assert text in html, (url, text)
        assert not ZERO_TAIL.search(html), (url, ZERO_TAIL.search(html))
        assert "000000000000" not in html.replace(TX_HASH, ""), url


def test_objects_are_named_for_people(traced: dict[str, int]) -> None:
    assert str(Payment.objects.get(pk=traced["payment"])) == "payment #5077125051 (19.99 USD, finished)"
    assert str(BatchConversion.objects.get(pk=traced["conversion"])) == (
        f"conversion #{traced['conversion']} (0.00612345 ETH)"
    )
    payout = PayoutBatch.objects.get(pk=traced["payout"])
    assert str(payout) == f"payout #{payout.pk} to Threshold channel (threshold, 18.818000 USDT)"
    assert str(HostPayment.objects.get(pk=traced["conversion_funding"])).endswith("(0.01 ETH on eth, confirmed)")


# --- timeline and tracing ----------------------------------------------------------------------


def test_timelines_show_seconds_timezone_and_who(threshold_client: Client) -> None:
    ClientFactory.create(
        external_id="-100961", name="Late channel", payout_threshold_usd=Decimal("50.00"), is_active=False
    )
    post_ipn(HttpClient(), ipn_body(payment_id=900801, order_id="PGP-7|-100961"))
    payment = Payment.objects.get(provider_payment_id=900801)
    assert payment.routing_status == RoutingStatus.HELD
    Client.objects.filter(external_id="-100961").update(is_active=True)
    resolver = staff("resolver", *VIEW_ALL, "payments.resolve_held_payment")
    http = logged_in(resolver)
    http.post(
        reverse("admin:payments_payment_changelist"), {"action": "reroute_held", "_selected_action": [payment.pk]}
    )

    html = page(http, change_url("payments_payment", payment.pk))
    timeline = html[html.index('<table class="timeline"') :]
    timeline = timeline[: timeline.index("</table>")]
    assert SECONDS_AND_ZONE.search(timeline)
    assert "resolver" in timeline  # who
    assert "reroute" in timeline  # what
    assert "NOWPayments (IPN)" in timeline  # the IPN that created it, in order before the reroute
    assert timeline.index("NOWPayments (IPN)") < timeline.index("resolver")
    assert "was held:" in timeline  # why

    batch = PayoutBatchFactory.create(client=threshold_client)
    from pgp_project.operations.state_machine import record_created

    record_created("payout", batch.pk, "created", reason="threshold reached")
    html = page(http, change_url("payouts_payoutbatch", batch.pk))
    assert 'class="timeline"' in html
    assert '<td class="timeline-who">system</td>' in html
    assert "threshold reached" in html
    assert SECONDS_AND_ZONE.search(html)


def test_payment_links_onward_and_each_step_links_back(viewer: HttpClient, traced: dict[str, int]) -> None:
    payment_url = change_url("payments_payment", traced["payment"])
    row_url = change_url("payments_payoutaccumulation", traced["row"])
    conversion_url = change_url("batching_batchconversion", traced["conversion"])
    payout_url = change_url("payouts_payoutbatch", traced["payout"])
    conversion_funding_url = change_url("payouts_hostpayment", traced["conversion_funding"])
    payout_funding_url = change_url("payouts_hostpayment", traced["payout_funding"])

    html = page(viewer, payment_url)
    trace = html[html.index('class="payment-trace"') :]
    for url in (row_url, conversion_url, payout_url, conversion_funding_url, payout_funding_url):
        assert f'href="{url}"' in trace, url
        page(viewer, url)  # every onward link resolves
    for tx in (TX_HASH, CONVERSION_TX, PAYOUT_TX):
        assert f'data-copy="{tx}"' in trace

    # ... and back.
    assert f'href="{payment_url}"' in page(viewer, row_url)
    assert f'href="{conversion_url}"' in page(viewer, row_url)
    conversion_page = page(viewer, conversion_url)
    assert f'href="{payment_url}"' in conversion_page
    assert f'href="{row_url}"' in conversion_page
    assert f'href="{conversion_funding_url}"' in conversion_page
    payout_page = page(viewer, payout_url)
    assert f'href="{payment_url}"' in payout_page
    assert f'href="{row_url}"' in payout_page
    assert f'href="{payout_funding_url}"' in payout_page
    assert f'href="{payout_url}"' in page(viewer, payout_funding_url)
    assert f'href="{conversion_url}"' in page(viewer, conversion_funding_url)
    assert f'href="{payout_url}"' in page(viewer, change_url("payments_client", PayoutBatch.objects.get().client_id))


def test_a_stuck_payout_shows_its_last_error_on_the_list_and_its_page(viewer: HttpClient) -> None:
    stuck = PayoutBatchFactory.create(
        client=ClientFactory.create(name="Demo channel B"),
        last_error="exchange refused: amount 4.2 USDT below the minimum 10 USDT",
        attempts=3,
        next_action_at=timezone.now() + timedelta(minutes=5),
    )
    assert stuck.status == BatchStatus.CREATED
    for url in (reverse("admin:payouts_payoutbatch_changelist"), change_url("payouts_payoutbatch", stuck.pk)):
        html = page(viewer, url)
        assert "last error (after 3 attempts): exchange refused: amount 4.2 USDT below the minimum 10 USDT" in html
        assert "next try" in html
    funding = HostPaymentFactory.create(owner_kind="payout", waiting_for="balance", last_error="hot wallet holds 0 ETH")
    PayoutBatch.objects.filter(pk=stuck.pk).update(host_payment=funding)
    html = page(viewer, reverse("admin:payouts_payoutbatch_changelist"))
    assert "waiting for hot-wallet balance" in html
    assert "hot wallet holds 0 ETH" in html
    html = page(viewer, reverse("admin:payouts_hostpayment_changelist"))
    assert "waiting for hot-wallet balance" in html  # no attempts yet
    assert "last error (after" not in html
    assert "hot wallet holds 0 ETH" in html


def test_explorer_links_appear_when_configured_with_a_copy_button(
    viewer: HttpClient, traced: dict[str, int], settings
) -> None:
    url = change_url("payouts_hostpayment", traced["conversion_funding"])
    settings.PGP_BLOCK_EXPLORERS = EXPLORERS
    html = page(viewer, url)
    assert f'href="https://etherscan.io/tx/{TX_HASH}"' in html
    assert 'href="https://etherscan.io/address/' in html
    assert f'data-copy="{TX_HASH}"' in html
    assert "0xababab…ababab" in html
    assert "admin_extras/copy.js" in html
    assert "admin_extras/admin_extras.css" in html
    assert "onclick" not in html  # the CSP allows no inline script
    assert "<script>" not in html
    settings.PGP_BLOCK_EXPLORERS = {}
    html = page(viewer, url)
    assert "etherscan.io" not in html
    assert f'data-copy="{TX_HASH}"' in html  # still shortened and copyable


# --- lists: the date-range filter (no date hierarchy) ----------------------------------------


def test_lists_filter_by_a_date_range(viewer: HttpClient, traced: dict[str, int]) -> None:
    url = reverse("admin:payments_payment_changelist")
    today = timezone.now().date()
    html = page(viewer, url)
    assert 'id="date-range-created_at"' in html
    assert 'type="date"' in html
    # No date hierarchy on a large list: its drill-down reads every row of the table.
    assert "xfull" not in html
    assert "toplinks" not in html
    inside = viewer.get(url, {"created_at__range__gte": today.isoformat(), "created_at__range__lte": today.isoformat()})
    assert inside.context["cl"].result_count == 1
    later = viewer.get(url, {"created_at__range__gte": (today + timedelta(days=1)).isoformat()})
    assert later.context["cl"].result_count == 0
    earlier = viewer.get(url, {"created_at__range__lte": (today - timedelta(days=1)).isoformat()})
    assert earlier.context["cl"].result_count == 0
    assert viewer.get(url, {"created_at__range__gte": "not-a-date"}).context["cl"].result_count == 1
    for name in (
        "payouts_payoutbatch",
        "batching_batchconversion",
        "payouts_hostpayment",
        "payments_payoutaccumulation",
    ):
        response = viewer.get(reverse(f"admin:{name}_changelist"), {"created_at__range__gte": today.isoformat()})
        assert response.status_code == 200, name
        assert response.context["cl"].result_count >= 1, name


# --- payouts: the approval line, and bulk approve and reject with a confirmation page ------------


def awaiting_payouts() -> tuple[PayoutBatch, PayoutBatch, User]:
    """Two payouts above the approval limit; the approver rerouted the held payment of the second."""
    approver = staff("approver", *VIEW_ALL, "payments.resolve_held_payment", "payouts.approve_payout")
    RuntimeSettings.objects.filter(pk=get_runtime_settings().pk).update(payout_approval_limit_usdt=Decimal("10"))
    ClientFactory.create(external_id="-100971", name="Clean channel", payout_threshold_usd=Decimal("50.00"))
    ClientFactory.create(
        external_id="-100972", name="Rerouted channel", payout_threshold_usd=Decimal("50.00"), is_active=False
    )
    for payment_id, external_id in ((900901, "-100971"), (900902, "-100972")):
        body = ipn_body(
            payment_id=payment_id,
            order_id=f"PGP-7|{external_id}",
            price_amount="60.00",
            outcome_amount="60.00",
            outcome_currency="usdterc20",
        )
        assert post_ipn(HttpClient(), body).status_code == 200
    held = Payment.objects.get(provider_payment_id=900902)
    assert held.routing_status == RoutingStatus.HELD
    Client.objects.filter(external_id="-100972").update(is_active=True)
    logged_in(approver).post(
        reverse("admin:payments_payment_changelist"), {"action": "reroute_held", "_selected_action": [held.pk]}
    )
    check_client_payouts()
    clean = PayoutBatch.objects.get(client__external_id="-100971")
    rerouted = PayoutBatch.objects.get(client__external_id="-100972")
    assert clean.status == rerouted.status == BatchStatus.AWAITING_APPROVAL
    return clean, rerouted, approver


def test_bulk_approve_asks_first_then_approves_and_reports_refusals() -> None:
    clean, rerouted, approver = awaiting_payouts()
    http = logged_in(approver)
    changelist = reverse("admin:payouts_payoutbatch_changelist")
    assert 'value="approve_selected"' in page(http, changelist)

    confirm = http.post(changelist, {"action": "approve_selected", "_selected_action": [clean.pk, rerouted.pk]})
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert 'id="bulk-decision-payouts"' in html
    assert 'id="confirm-approve_selected"' in html
    for batch in (clean, rerouted):
        assert f'data-payout-id="{batch.pk}"' in html
        assert str(batch.client) in html
    assert "58.200000 USDT" in html  # the amount
    assert "0x709979…dc79C8" in html  # the destination
    assert set(PayoutBatch.objects.values_list("status", flat=True)) == {BatchStatus.AWAITING_APPROVAL}

    done = http.post(
        changelist,
        {"action": "approve_selected", "_selected_action": [clean.pk, rerouted.pk], "post": "yes"},
        follow=True,
    )
    messages = [str(m) for m in done.context["messages"]]
    assert any(m.startswith(f"Payout #{clean.pk}: approved") for m in messages), messages
    assert any(
        m.startswith(f"Payout #{rerouted.pk}: refused") and "a second person must approve it" in m for m in messages
    ), messages
    assert PayoutBatch.objects.get(pk=clean.pk).approved_by == approver
    assert PayoutBatch.objects.get(pk=rerouted.pk).status == BatchStatus.AWAITING_APPROVAL

    # The approval line at the top of the page says who approved and when, and offers the buttons
    # only while a payout awaits approval.
    approved_page = page(http, change_url("payouts_payoutbatch", clean.pk))
    assert re.search(r"approved by approver at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", approved_page)
    awaiting_page = page(http, change_url("payouts_payoutbatch", rerouted.pk))
    assert 'id="approve-payout"' in awaiting_page
    assert 'id="reject-payout"' in awaiting_page
    assert awaiting_page.index("approval-line") < awaiting_page.index('class="timeline"')


def test_bulk_reject_asks_first_and_needs_the_approval_permission() -> None:
    clean, rerouted, _ = awaiting_payouts()
    changelist = reverse("admin:payouts_payoutbatch_changelist")
    viewer = logged_in(staff("viewer-only", *VIEW_ALL))
    assert 'value="reject_selected"' not in page(viewer, changelist)
    viewer.post(changelist, {"action": "reject_selected", "_selected_action": [clean.pk], "post": "yes"})
    assert PayoutBatch.objects.get(pk=clean.pk).status == BatchStatus.AWAITING_APPROVAL

    second = logged_in(staff("second", *VIEW_ALL, "payouts.approve_payout"))
    confirm = second.post(changelist, {"action": "reject_selected", "_selected_action": [clean.pk, rerouted.pk]})
    assert confirm.status_code == 200
    assert b'id="confirm-reject_selected"' in confirm.content
    assert PayoutBatch.objects.get(pk=clean.pk).status == BatchStatus.AWAITING_APPROVAL
    done = second.post(
        changelist,
        {"action": "reject_selected", "_selected_action": [clean.pk, rerouted.pk], "post": "yes"},
        follow=True,
    )
    messages = [str(m) for m in done.context["messages"]]
    assert sum("rejected" in m for m in messages) == 2, messages
    assert set(PayoutBatch.objects.values_list("status", flat=True)) == {BatchStatus.CANCELLED}
    html = page(second, change_url("payouts_payoutbatch", clean.pk))
    assert re.search(r"rejected by second at \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", html)
