"""The conversion check's claim on PostgreSQL: one statement decides (threshold, exchange minimum)
and claims, so a check that claims nothing writes nothing and uses no conversion id; what it
claims is exactly what the conversion's totals say; a second run finds nothing to claim."""

from decimal import Decimal

import pytest
from django.db import connection

from batching.conversion import check_threshold
from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.selectors import get_runtime_settings

from .factories import AccumulationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fixed_price_exchange(settings) -> None:
    """The stand-ins' exchange: its minimum is 0.0001 ETH, and it answers without a network."""
    settings.PGP_EXCHANGE_PROVIDER = "fixed_price"
    runtime = get_runtime_settings()
    runtime.micro_batch_threshold_usd = Decimal("20.00")
    runtime.save()


def conversion_ids_drawn() -> tuple[int, bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value, is_called FROM batch_conversions_id_seq")
        last_value, is_called = cursor.fetchone()
    return last_value, is_called


def pending_rows(client: Client, count: int, eth: str = "0.003") -> list[PayoutAccumulation]:
    return [AccumulationFactory.create(client=client, source_amount=Decimal(eth)) for _ in range(count)]


def test_below_the_threshold_nothing_is_written_and_no_id_is_used(threshold_client: Client) -> None:
    pending_rows(threshold_client, 2)  # 2 x 9.70 = 19.40 net USD, under 20
    drawn = conversion_ids_drawn()

    check = check_threshold()

    assert (check.conversion_id, check.pending_net_usd, check.waiting_for) == (None, Decimal("19.40"), "")
    assert not BatchConversion.objects.exists()
    assert set(PayoutAccumulation.objects.values_list("status", "batch_conversion_id")) == {
        (AccumulationStatus.PENDING, None)
    }
    assert conversion_ids_drawn() == drawn


def test_under_the_exchange_minimum_the_rows_wait_and_nothing_is_written(threshold_client: Client) -> None:
    pending_rows(threshold_client, 3, eth="0.00001")  # 29.10 net USD, but 0.00003 ETH < 0.0001
    drawn = conversion_ids_drawn()

    check = check_threshold()

    assert check.conversion_id is None
    assert check.waiting_for == "0.000030000000000000 ETH pending is under fixed_price's minimum 0.0001"
    assert not BatchConversion.objects.exists()
    assert not PayoutAccumulation.objects.exclude(status=AccumulationStatus.PENDING).exists()
    assert conversion_ids_drawn() == drawn


def test_over_the_threshold_every_pending_row_is_claimed_once_with_exact_totals(threshold_client: Client) -> None:
    rows = pending_rows(threshold_client, 3)
    rows[0].net_usd, rows[0].fee_usd, rows[0].source_amount = Decimal("9.71"), Decimal("0.29"), Decimal("0.0031")
    rows[0].save()
    converted = AccumulationFactory.create(
        client=threshold_client,
        status=AccumulationStatus.CONVERTED,
        usdt_amount=Decimal("1"),
        fee_usdt=Decimal("0.03"),
        credit_usdt=Decimal("0.97"),
    )

    check = check_threshold()

    conversion = BatchConversion.objects.get()
    assert check.conversion_id == conversion.pk
    claimed = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk)
    assert sorted(claimed.values_list("pk", flat=True)) == sorted(row.pk for row in rows)
    assert set(claimed.values_list("status", flat=True)) == {AccumulationStatus.SWAPPING}
    assert (conversion.row_count, conversion.total_net_usd, conversion.total_gross_usd, conversion.total_eth) == (
        3,
        Decimal("29.11"),
        Decimal("30.00"),
        Decimal("0.0091"),
    )
    assert conversion.deadline_at is not None
    assert AuditEvent.objects.filter(subject_id=conversion.pk, action="created").count() == 1
    assert PayoutAccumulation.objects.get(pk=converted.pk).batch_conversion_id is None

    drawn = conversion_ids_drawn()
    again = check_threshold()  # run twice: nothing pending any more
    assert (again.conversion_id, again.pending_net_usd) == (None, Decimal(0))
    assert BatchConversion.objects.count() == 1
    assert conversion_ids_drawn() == drawn
