"""`manage.py seed_scale` at a tiny size: the row counts, the constraints the ORM checks, the
money (each conversion distributed exactly as batching.distribution would, each payout the sum
of its rows, each host payment its batch's amount, the clients' balances), and every admin and
console page answering on the seeded data as a logged-in superuser.

The seed commits on two connections at once, so these tests commit too (transaction=True)."""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum
from django.urls import reverse
from django.utils import timezone

from batching.distribution import largest_remainder_split
from batching.models import BatchConversion
from payments.ipn_counters import ipn_event_totals
from payments.models import Client, Payment, PaymentEvent, PayoutAccumulation
from payments.selectors import client_balance
from payouts.models import HostPayment, PayoutBatch
from pgp_project.money import ETH_PLACES, USDT_PLACES, USDT_QUANTUM, from_base_units, percent_of, to_base_units
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.status_counts import status_counts
from standins.scale_seed import SeedSize, seed

from ..people import logged_in, staff

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = SeedSize(payments=4000, ipn_events=8200, conversions=100, threshold_payouts=90, instant_payouts=40, clients=10)


@pytest.fixture
def seeded() -> SeedSize:
    seed(SIZE)
    return SIZE


def test_row_counts_and_statuses(seeded: SeedSize) -> None:
    assert Client.objects.count() == SIZE.clients
    assert Payment.objects.count() == SIZE.payments
    assert PaymentEvent.objects.count() == SIZE.ipn_events
    routed_threshold = Payment.objects.filter(routing_status="routed", client__payout_strategy="threshold")
    assert PayoutAccumulation.objects.count() == routed_threshold.count()
    assert not routed_threshold.filter(accumulation__isnull=True).exists()
    assert BatchConversion.objects.count() == SIZE.conversions
    instant = PayoutBatch.objects.filter(kind="instant")
    assert instant.count() == Payment.objects.filter(routing_status="routed", client__payout_strategy="instant").count()
    assert 20 <= instant.count() <= SIZE.instant_payouts
    # One payout per threshold client per period, about as many as asked (periods without rows have none).
    assert (
        0.7 * SIZE.threshold_payouts
        <= PayoutBatch.objects.filter(kind="threshold").count()
        <= 1.1 * (SIZE.threshold_payouts)
    )
    # Mostly completed; something in every state an operator looks at.
    conversions = dict(BatchConversion.objects.values_list("status").annotate(n=Count("id")))
    assert conversions["completed"] >= SIZE.conversions - 6
    assert {"failed", "cancelled", "exchanging", "funding", "swap_created"} <= set(conversions)
    payouts = dict(PayoutBatch.objects.values_list("status").annotate(n=Count("id")))
    assert payouts["completed"] > 0.8 * sum(payouts.values())
    held = Payment.objects.filter(routing_status="held")
    assert held.filter(status="finished", hold_reason__startswith="no client").exists()
    assert held.filter(status="partially_paid").exists()
    open_payouts = PayoutBatch.objects.filter(
        kind="threshold", status__in=["awaiting_approval", "swap_created", "funding", "exchanging"]
    )
    assert open_payouts.exists()
    rows = dict(PayoutAccumulation.objects.values_list("status").annotate(n=Count("id")))
    assert {"pending", "swapping", "converted", "paid_out"} <= set(rows)
    assert rows["paid_out"] > 0.5 * sum(rows.values())  # at this size, 5 of 100 conversions are still open
    # Two years, in order; nothing in the future.
    now = timezone.now()
    first, last = Payment.objects.order_by("id").first(), Payment.objects.order_by("id").last()
    assert first is not None
    assert last is not None
    assert now - timedelta(days=731) < first.created_at < last.created_at <= now
    assert not PaymentEvent.objects.filter(received_at__gt=now).exists()
    # /metrics' counters: the IPNs counted as the intake would have, the states as the triggers keep them.
    events = dict(PaymentEvent.objects.values_list("outcome").annotate(n=Count("id")))
    assert {outcome: n for outcome, n in ipn_event_totals().items() if n} == events
    for model in (BatchConversion, PayoutBatch, HostPayment):
        by_state = dict(model._default_manager.values_list("status").annotate(n=Count("id")))
        assert {status: count.rows for status, count in status_counts(model._meta.db_table).items()} == by_state
    # Every batch and host payment has its transitions in the audit trail.
    assert (
        AuditEvent.objects.filter(subject_type="host_payment").count()
        >= 3 * HostPayment.objects.filter(status="confirmed").count()
    )


def test_rows_pass_the_models_own_validation(seeded: SeedSize) -> None:
    """full_clean: field choices, digits and places, and every model constraint, on a sample of each."""
    samples = [
        *Client.objects.all()[:3],
        *Payment.objects.filter(routing_status="held")[:2],
        *Payment.objects.order_by("?")[:5],
        *PayoutAccumulation.objects.order_by("?")[:5],
        *BatchConversion.objects.all(),
        *PayoutBatch.objects.order_by("?")[:10],
        *HostPayment.objects.order_by("?")[:5],
    ]
    for obj in samples:
        obj.full_clean()


def test_each_conversion_is_distributed_exactly_as_the_distribution_does(seeded: SeedSize) -> None:
    for conversion in BatchConversion.objects.exclude(status="cancelled"):
        rows = list(PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk).order_by("id"))
        assert len(rows) == conversion.row_count
        assert sum(row.source_amount for row in rows) == conversion.total_eth
        assert sum(row.net_usd for row in rows) == conversion.total_net_usd
        if conversion.status != "completed":
            assert {row.status for row in rows} == {"swapping"}
            continue
        assert conversion.received_usdt is not None
        parts = largest_remainder_split(
            to_base_units(conversion.received_usdt, USDT_PLACES),
            [to_base_units(row.source_amount, ETH_PLACES) for row in rows],
        )
        for row, units in zip(rows, parts, strict=True):
            usdt = from_base_units(units, USDT_PLACES)
            assert row.usdt_amount == usdt
            assert row.fee_usdt == percent_of(usdt, row.fee_percent, USDT_QUANTUM)
            assert row.credit_usdt == usdt - row.fee_usdt
        assert conversion.fee_usdt_total == sum(row.fee_usdt or 0 for row in rows)
        assert conversion.credit_usdt_total == sum(row.credit_usdt or 0 for row in rows)
        assert conversion.fee_usdt_total + conversion.credit_usdt_total == conversion.received_usdt


def test_payouts_and_host_payments_add_up(seeded: SeedSize) -> None:
    for payout in PayoutBatch.objects.filter(kind="threshold"):
        claimed = PayoutAccumulation.objects.filter(payout_batch_id=payout.pk)
        totals = claimed.aggregate(credit=Sum("credit_usdt"), rows=Count("id"))
        assert (payout.total_usdt, payout.row_count) == (totals["credit"], totals["rows"])
        assert payout.source_amount == payout.total_usdt
        assert set(claimed.values_list("client_id", flat=True)) == {payout.client_id}
        expected = {"paid_out"} if payout.status == "completed" else {"in_payout"}
        assert set(claimed.values_list("status", flat=True)) == expected
    for payout in PayoutBatch.objects.filter(kind="instant").select_related("payment"):
        assert payout.payment is not None
        assert payout.payment.client_id == payout.client_id
        assert payout.source_amount + payout.fee_amount == payout.payment.outcome_amount
    sends: list[tuple[BatchConversion | PayoutBatch, Decimal]] = [
        *((conversion, conversion.total_eth) for conversion in BatchConversion.objects.all()),
        *((payout, payout.source_amount) for payout in PayoutBatch.objects.all()),
    ]
    for batch, sent in sends:
        funded = batch.status in ("funding", "funded", "exchanging", "completed", "failed")
        assert (batch.host_payment_id is not None) == funded, batch
        if batch.host_payment is None:
            continue
        assert batch.host_payment.amount == sent
        assert batch.host_payment.to_address == batch.payin_address
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT nonce) FROM evm_transfers")
        transfers, nonces = cursor.fetchone()
    assert transfers == nonces == HostPayment.objects.count()


def test_client_balances_are_the_seeded_rows(seeded: SeedSize) -> None:
    """What the selectors report for each client is what its rows hold by state, and the credit of
    every state together is exactly what the conversions credited and the USDT payments brought."""
    expected: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in PayoutAccumulation.objects.all():
        if row.status == "pending":
            expected[row.client_id]["pending_usd"] += row.net_usd
        elif row.status in ("converted", "in_payout", "paid_out"):
            assert row.credit_usdt is not None
            expected[row.client_id][f"{row.status}_usdt"] += row.credit_usdt
    for client in Client.objects.filter(payout_strategy="threshold"):
        balance = client_balance(client.pk)
        for name, value in balance.items():
            assert value == expected[client.pk][name], (client, name)
    credited = sum(sum(v for k, v in states.items() if k.endswith("_usdt")) for states in expected.values())
    converted = BatchConversion.objects.filter(status="completed").aggregate(total=Sum("credit_usdt_total"))["total"]
    usdt_paid = PayoutAccumulation.objects.filter(source_asset="usdterc20").aggregate(total=Sum("credit_usdt"))["total"]
    assert credited == converted + usdt_paid
    assert any(states["converted_usdt"] > 0 for states in expected.values())


def test_admin_and_console_pages_answer_on_the_seeded_data(seeded: SeedSize) -> None:
    http = logged_in(staff("scale-operator", superuser=True))
    pages = [reverse("admin:index"), reverse("admin:attention_queue")]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        if not model_admin.has_view_permission(_request_of(http)):
            continue
        pages.append(reverse("admin:{}_{}_changelist".format(*info)))
        obj = model._default_manager.order_by("-pk").first()
        if obj is not None and model_admin.has_view_permission(_request_of(http), obj):
            pages.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
    client = Client.objects.filter(payout_strategy="threshold").first()
    assert client is not None
    today = timezone.localdate()
    pages.append(
        f"{reverse('admin:console_statement')}?client={client.pk}&date_from={today - timedelta(days=365)}"
        f"&date_to={today}"
    )
    payment = Payment.objects.order_by("id").last()
    assert payment is not None
    pages.append(f"{reverse('admin:payments_payment_changelist')}?q={payment.provider_payment_id}")
    for page in pages:
        response = http.get(page)
        assert response.status_code == 200, page


def test_refuses_a_database_that_holds_payments(seeded: SeedSize) -> None:
    with pytest.raises(CommandError, match="already holds payments"):
        call_command("seed_scale", "--scale", "0.001")
    assert Payment.objects.count() == SIZE.payments


def _request_of(http: object) -> object:
    """A request carrying the logged-in superuser, for the admins' permission checks."""
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = User.objects.get(username="scale-operator")
    return request
