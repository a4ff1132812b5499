"""The console at scale: the pages read only what they show. The large lists count exactly only
up to EXACT_COUNT_UP_TO rows (above it, the planner's estimate, labelled), never a full COUNT, no
date hierarchy, no DISTINCT over a large table for a filter, a capped page count; search is an
exact equality an index serves; the overview's money stays exact while reading only the rows not
paid out; a statement reads only its range; the public /health/ counts nothing.

Real rows in the real database, real requests through the admin; nothing of ours is mocked."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from console.selectors import client_balances, money_by_state
from console.statements import statement_csv
from payments.models import AccumulationStatus, Client, Payment, PaymentStatus
from pgp_project.admin_scale import EXACT_COUNT_UP_TO, MAX_PAGES
from pgp_project.operations.models import AuditEvent

from ..factories import (
    AccumulationFactory,
    ClientFactory,
    HostPaymentFactory,
    PaymentFactory,
    PayoutBatchFactory,
    StaffUserFactory,
)

pytestmark = pytest.mark.django_db

S = AccumulationStatus

LARGE_LISTS = [
    "payments_payment",
    "payments_paymentevent",
    "payments_payoutaccumulation",
    "payouts_payoutbatch",
    "payouts_hostpayment",
    "batching_batchconversion",
    "operations_auditevent",
]


@pytest.fixture
def operator() -> HttpClient:
    http = HttpClient()
    http.force_login(StaffUserFactory.create(username="scale-operator"))
    return http


@pytest.fixture
def many_payments() -> int:
    """EXACT_COUNT_UP_TO + 500 payments, written in one statement (the factories would take
    minutes), routed to no client: what the payments list must not count in full."""
    count = EXACT_COUNT_UP_TO + 500
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payments_payment (provider_payment_id, status, order_id, order_description,
                price_amount, price_currency, pay_currency, outcome_currency, routing_status,
                hold_reason, raw_payload, created_at, updated_at)
            SELECT 90000000 + g, 'waiting', 'PGP-1|bulk' || g, '', 10, 'usd', 'eth', 'eth',
                'not_finished', '', '{}'::jsonb, now() - g * interval '1 minute', now()
            FROM generate_series(1, %s) g
            """,
            [count],
        )
        cursor.execute("ANALYZE payments_payment")
    return count


def queries_of(http: HttpClient, url: str) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = http.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode(), [q["sql"] for q in captured.captured_queries]


def full_counts(queries: list[str], table: str) -> list[str]:
    """The paginator's COUNT queries over the whole of `table`: neither bounded by a LIMIT nor
    filtered (the header's needs-attention counts are filtered to their small, indexed sets)."""
    counts = [q for q in queries if '"__count"' in q and f'FROM "{table}"' in q]
    return [q for q in counts if "LIMIT" not in q and "WHERE" not in q]


@pytest.mark.parametrize("model", LARGE_LISTS)
def test_a_large_list_makes_no_full_count_no_date_hierarchy_and_no_distinct_scan(
    operator: HttpClient, model: str
) -> None:
    app_label, _, model_name = model.partition("_")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    html, queries = queries_of(operator, url)
    # The header's needs-attention counts are COUNTs of their own (small, indexed) sets; the list
    # itself must never count its table in full.
    own_table = {
        "payments_payment": "payments_payment",
        "payments_paymentevent": "payments_paymentevent",
        "payments_payoutaccumulation": "payout_accumulation",
        "payouts_payoutbatch": "payout_batches",
        "payouts_hostpayment": "payouts_hostpayment",
        "batching_batchconversion": "batch_conversions",
        "operations_auditevent": "operations_auditevent",
    }[model]
    assert not full_counts(queries, own_table)
    assert not any("DATE_TRUNC" in q for q in queries), "a date hierarchy reads the whole table"
    assert not any(q.startswith("SELECT DISTINCT") and f'FROM "{own_table}"' in q for q in queries)
    assert "Exact match" in html  # the page says that search is by exact keys


def test_the_payments_list_above_the_exact_limit_shows_a_labelled_estimate_and_caps_its_pages(
    operator: HttpClient, many_payments: int
) -> None:
    html, queries = queries_of(operator, reverse("admin:payments_payment_changelist"))
    assert not full_counts(queries, "payments_payment")
    assert any("EXPLAIN" in q for q in queries)  # the planner's estimate, nothing counted in full
    estimate = re.search(r'class="count-estimate"[^>]*>about (\d+) payments \(estimate\)', html)
    assert estimate, "the count above the exact limit is labelled as an estimate"
    # An estimate, yet of the right size: ANALYZE has just read the table.
    assert abs(int(estimate.group(1)) - many_payments) < many_payments * 0.2
    # 105 pages at 100 a page are within the cap; the cap itself is a fixed number of pages.
    assert MAX_PAGES >= 100
    page_105 = operator.get(reverse("admin:payments_payment_changelist") + "?p=105")
    assert page_105.status_code == 200


def test_the_payments_list_below_the_limit_counts_exactly(operator: HttpClient) -> None:
    PaymentFactory.create_batch(3)
    html, _ = queries_of(operator, reverse("admin:payments_payment_changelist"))
    assert "count-estimate" not in html
    assert re.search(r"\b3 payments\b", html)


def test_a_page_beyond_the_cap_is_refused_not_read(operator: HttpClient, many_payments: int) -> None:
    url = reverse("admin:payments_payment_changelist") + f"?p={MAX_PAGES + 1}"
    response = operator.get(url)
    # The admin's answer to an invalid page: back to the list with an error flag, no deep OFFSET.
    assert response.status_code == 302
    assert "e=1" in response["Location"]


def test_payment_search_is_an_exact_equality_by_payment_id_or_order_id(operator: HttpClient) -> None:
    wanted = PaymentFactory.create(provider_payment_id=5550001, order_id="PGP-7|-1001234")
    PaymentFactory.create(provider_payment_id=5550002, order_id="PGP-7|-1001234-other")
    url = reverse("admin:payments_payment_changelist")

    html, queries = queries_of(operator, f"{url}?q=PGP-7|-1001234")
    listing = [q for q in queries if 'FROM "payments_payment"' in q and "order_id" in q]
    assert listing
    assert all("LIKE" not in q for q in listing)
    assert all("UPPER(" not in q for q in listing)
    assert any('"payments_payment"."order_id" = ' in q for q in listing)
    assert f"/{wanted.pk}/change/" in html
    assert "-1001234-other" not in html  # exact: no substring match

    html, _ = queries_of(operator, f"{url}?q=5550001")
    assert f"/{wanted.pk}/change/" in html

    html, _ = queries_of(operator, f"{url}?q=1001234")  # a part of an order id finds nothing
    assert f"/{wanted.pk}/change/" not in html
    assert re.search(r"\b0 payments\b", html)


def test_host_payment_search_finds_a_transaction_hash_in_any_case(operator: HttpClient) -> None:
    tx_hash = "0x" + "ab" * 32
    host_payment = HostPaymentFactory.create(
        status="confirmed", tx_hash=tx_hash, raw_transaction="0x02", confirmed_at=timezone.now()
    )
    url = reverse("admin:payouts_hostpayment_changelist")
    html, queries = queries_of(operator, f"{url}?q={tx_hash.upper().replace('0X', '0x')}")
    assert f"/{host_payment.pk}/change/" in html
    assert not any("LIKE" in q for q in queries if "payouts_hostpayment" in q)


def test_payout_search_by_exchange_id_and_client_id(operator: HttpClient) -> None:
    client = ClientFactory.create(external_id="-1009990001")
    payout = PayoutBatchFactory.create(client=client, exchange_id="ex-4242")
    url = reverse("admin:payouts_payoutbatch_changelist")
    assert f"/{payout.pk}/change/" in queries_of(operator, f"{url}?q=ex-4242")[0]
    assert f"/{payout.pk}/change/" in queries_of(operator, f"{url}?q=-1009990001")[0]
    assert f"/{payout.pk}/change/" not in queries_of(operator, f"{url}?q=ex-42")[0]


def test_audit_search_by_subject_id_names_every_type_for_the_index(operator: HttpClient) -> None:
    AuditEvent.objects.create(subject_type="payout", subject_id=777, action="transition", to_status="funding")
    AuditEvent.objects.create(subject_type="conversion", subject_id=778, action="transition", to_status="funded")
    url = reverse("admin:operations_auditevent_changelist")
    html, queries = queries_of(operator, f"{url}?q=777")
    search = [q for q in queries if 'FROM "operations_auditevent"' in q and "subject_id" in q]
    assert search
    assert all('"subject_type" IN' in q for q in search)
    assert "funding" in html
    assert "funded" not in html
    html, _ = queries_of(operator, f"{url}?subject_type=conversion")
    assert "funded" in html
    assert "funding" not in html


def test_accumulation_totals_stay_exact_below_the_limit(operator: HttpClient) -> None:
    client = ClientFactory.create()
    AccumulationFactory.create_batch(3, client=client, net_usd=Decimal("9.70"))
    html, _ = queries_of(operator, reverse("admin:payments_payoutaccumulation_changelist"))
    assert 'id="accumulation-totals"' in html
    assert "29.10" in html  # 3 x 9.70 net, exactly


def test_accumulation_totals_wait_for_a_filter_above_the_limit(operator: HttpClient, many_payments: int) -> None:
    client = ClientFactory.create()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payout_accumulation (payment_id, client_id, user_id, status, hold_reason, gross_usd,
                fee_percent, fee_usd, net_usd, source_asset, source_currency, source_amount, wallet_address,
                payout_currency, payout_network, created_at, updated_at)
            SELECT id, %s, 1, 'pending', '', 10, 3, 0.30, 9.70, 'eth', 'eth', 0.003, '0xabc', 'usdt', 'eth',
                created_at, now()
            FROM payments_payment WHERE order_id LIKE 'PGP-1|bulk%%'
            """,
            [client.pk],
        )
        cursor.execute("ANALYZE payout_accumulation")
    html, queries = queries_of(operator, reverse("admin:payments_payoutaccumulation_changelist"))
    assert 'id="accumulation-totals-need-filter"' in html
    assert not any('AS "gross_usd"' in q for q in queries)  # no sum over every row
    filtered = reverse("admin:payments_payoutaccumulation_changelist") + f"?q={PaymentFactory.create().pk}"
    assert 'id="accumulation-totals-need-filter"' not in queries_of(operator, filtered)[0]


def test_the_overview_reads_only_open_rows_and_stays_exact() -> None:
    client = ClientFactory.create(payout_threshold_usd=Decimal("100.00"))
    now = timezone.now()
    AccumulationFactory.create(client=client, net_usd=Decimal("9.70"))  # pending
    AccumulationFactory.create(
        client=client,
        status=S.CONVERTED,
        batch_conversion_id=1,
        usdt_amount=Decimal("10.000001"),
        fee_usdt=Decimal("0.300000"),
        credit_usdt=Decimal("9.700001"),
        converted_at=now,
    )
    refunded = AccumulationFactory.create(
        client=client,
        status=S.CONVERTED,
        batch_conversion_id=1,
        usdt_amount=Decimal("5"),
        fee_usdt=Decimal("1"),
        credit_usdt=Decimal("4"),
        converted_at=now,
    )
    Payment.objects.filter(pk=refunded.payment_id).update(status=PaymentStatus.REFUNDED)
    AccumulationFactory.create(
        client=client,
        status=S.PAID_OUT,
        batch_conversion_id=1,
        payout_batch_id=1,
        usdt_amount=Decimal("3.333334"),
        fee_usdt=Decimal("0.1"),
        credit_usdt=Decimal("3.233334"),
        converted_at=now,
        paid_out_at=now,
    )
    AccumulationFactory.create(
        client=client,
        status=S.PAID_OUT,
        batch_conversion_id=1,
        payout_batch_id=1,
        usdt_amount=Decimal("7"),
        fee_usdt=Decimal("1"),
        credit_usdt=Decimal("6"),
        converted_at=now - timedelta(days=30),
        paid_out_at=now - timedelta(days=30),  # outside the week
    )
    with CaptureQueriesContext(connection) as captured:
        money = money_by_state(now)
    state_query = next(q["sql"] for q in captured.captured_queries if "pending_rows" in q["sql"])
    assert """NOT ("payout_accumulation"."status" = 'paid_out')""" in state_query  # open rows only
    assert money.pending_usd == Decimal("9.70")
    assert money.converted_usdt == Decimal("13.700001")  # every converted, unclaimed row
    assert money.paid_out_week_usdt == Decimal("3.233334")
    assert money.paid_out_today_usdt == Decimal("3.233334")

    with CaptureQueriesContext(connection) as captured:
        balances, count = client_balances()
    assert not any('"payments_payment" ON' in q["sql"] for q in captured.captured_queries)  # no join
    mine = next(b for b in balances if b.client_id == client.pk)
    assert mine.converted_usdt == Decimal("9.700001")  # the refunded payment's credit left out
    assert mine.pending_usd == Decimal("9.70")
    assert count >= 1


def test_client_balances_rank_the_closest_to_a_payout_first_then_the_rest_by_id() -> None:
    near = ClientFactory.create(external_id="-1002000002")
    idle_a = ClientFactory.create(external_id="-1002000001")
    idle_b = ClientFactory.create(external_id="-1002000003")
    AccumulationFactory.create(
        client=near,
        status=S.CONVERTED,
        batch_conversion_id=1,
        usdt_amount=Decimal("10"),
        fee_usdt=Decimal("1"),
        credit_usdt=Decimal("9"),
        converted_at=timezone.now(),
    )
    balances, _ = client_balances()
    order = [b.client_id for b in balances]
    assert order.index(near.pk) < order.index(idle_a.pk) < order.index(idle_b.pk)
    assert client_balances(limit=1)[0][0].client_id == near.pk


def test_a_statement_reads_only_its_range_and_keeps_events_converted_inside_it() -> None:
    client: Client = ClientFactory.create()
    start = timezone.now() - timedelta(days=10)
    end = timezone.now() - timedelta(days=5)
    converted = {
        "status": S.CONVERTED,
        "batch_conversion_id": 9,
        "usdt_amount": Decimal("10.000000"),
        "fee_usdt": Decimal("0.300000"),
        "credit_usdt": Decimal("9.700000"),
    }
    before = AccumulationFactory.create(client=client, **converted, converted_at=start + timedelta(days=1))
    inside = AccumulationFactory.create(client=client, **converted, converted_at=start + timedelta(days=2))
    after = AccumulationFactory.create(client=client, **converted, converted_at=end + timedelta(days=1))
    # created_at is set on insert: place each row's payment in time.
    type(before).objects.filter(pk=before.pk).update(created_at=start - timedelta(days=1))
    type(inside).objects.filter(pk=inside.pk).update(created_at=start + timedelta(days=1))
    type(after).objects.filter(pk=after.pk).update(created_at=end + timedelta(hours=1))

    with CaptureQueriesContext(connection) as captured:
        rows = list(csv.DictReader(io.StringIO(statement_csv(client, start, end))))
    row_query = next(q["sql"] for q in captured.captured_queries if 'FROM "payout_accumulation"' in q["sql"])
    assert '"payout_accumulation"."created_at" >= ' in row_query  # the range is in the query
    events = sorted((r["type"], int(r["payment_id"])) for r in rows)
    before_id, inside_id = before.payment.provider_payment_id, inside.payment.provider_payment_id
    assert events == sorted(
        [("fee", before_id), ("credit", before_id), ("payment", inside_id), ("fee", inside_id), ("credit", inside_id)]
    )
    assert sum(Decimal(r["amount"]) for r in rows if r["type"] == "credit") == Decimal("19.400000")


def test_the_public_health_probe_counts_nothing(client: HttpClient) -> None:
    with CaptureQueriesContext(connection) as captured:
        client.get("/health/")
    assert not any("COUNT(" in q["sql"] for q in captured.captured_queries)


def test_the_operators_health_still_reports_what_needs_attention(operator: HttpClient) -> None:
    body = operator.get("/health/").json()
    assert "needs_attention" in body["checks"]
