"""The conversion check's claim on PostgreSQL: one statement decides (threshold, exchange minimum)
and claims, so a check that claims nothing writes nothing and uses no conversion id; what it
claims is exactly what the conversion's totals say; a second run finds nothing to claim."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from batching.conversion import CHECK_THRESHOLD_TASK, check_threshold
from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from pgp_project.operations.models import AuditEvent, JobHeartbeat
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.services import job_heartbeat

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


def test_rows_that_wait_for_the_exchange_minimum_are_alerted_on_a_throttle(
    threshold_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Past the threshold but under the minimum, they have no deadline of their own: an operator
    # must hear of it, once per PGP_ALERT_REPEAT_SECONDS, not on every Beat run.
    pending_rows(threshold_client, 3, eth="0.00001")
    with caplog.at_level("ERROR"):
        for _ in range(3):
            with job_heartbeat(CHECK_THRESHOLD_TASK):
                assert check_threshold().waiting_for
    lines = [record.getMessage() for record in caplog.records if "ALERT conversion_waiting" in record.getMessage()]
    assert lines == [
        "ALERT conversion_waiting pending=29.10 USD threshold=20.00 USD: "
        "0.000030000000000000 ETH pending is under fixed_price's minimum 0.0001"
    ]
    JobHeartbeat.objects.update(condition_alerted_at=timezone.now() - timedelta(hours=1))
    with caplog.at_level("ERROR"), job_heartbeat(CHECK_THRESHOLD_TASK):
        check_threshold()
    assert sum("ALERT conversion_waiting" in record.getMessage() for record in caplog.records) == 2


def test_below_the_threshold_nothing_is_alerted(threshold_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    pending_rows(threshold_client, 1, eth="0.00001")
    with caplog.at_level("ERROR"), job_heartbeat(CHECK_THRESHOLD_TASK):
        assert check_threshold().waiting_for == ""
    assert "ALERT" not in caplog.text
