"""The conversion check's claim on PostgreSQL: one statement decides (threshold, exchange minimum,
and maximum: a conversion is capped at it) and claims, so a check that claims nothing writes
nothing and uses no conversion id; what it claims is exactly what the conversion's totals say; a
second run finds nothing to claim."""

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from batching.conversion import CHECK_THRESHOLD_TASK, check_threshold
from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from pgp_project.operations.models import AlertThrottle, AuditEvent
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.services import job_heartbeat
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import CHANGENOW_TEST_API_KEY
from ..factories import AccumulationFactory
from ..flows import inject, reset_sandbox, route_exchanges_to

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fixed_price_exchange(settings) -> None:
    """The stand-ins' exchange: its minimum is 0.0001 ETH, and it answers without a network."""
    route_exchanges_to(settings, "fixed_price")
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
    assert check.waiting_for == "0.000030000000000000 ETH pending is under the providers' lowest minimum 0.0001"
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
        "ALERT conversion_waiting pending_usd=29.10 threshold_usd=20.00 "
        "waiting_for=0.000030000000000000 ETH pending is under the providers' lowest minimum 0.0001"
    ]
    AlertThrottle.objects.filter(name="conversion_waiting").update(last_sent_at=timezone.now() - timedelta(hours=1))
    with caplog.at_level("ERROR"), job_heartbeat(CHECK_THRESHOLD_TASK):
        check_threshold()
    assert sum("ALERT conversion_waiting" in record.getMessage() for record in caplog.records) == 2


def test_below_the_threshold_nothing_is_alerted(threshold_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    pending_rows(threshold_client, 1, eth="0.00001")
    with caplog.at_level("ERROR"), job_heartbeat(CHECK_THRESHOLD_TASK):
        assert check_threshold().waiting_for == ""
    assert "ALERT" not in caplog.text


# --- the exchange's maximum: a conversion is capped, the rest waits for the next one ---------


@pytest.fixture
def changenow_with_a_maximum(sandbox: SandboxChangeNow, settings, monkeypatch) -> Iterator[None]:
    """The ChangeNOW adapter against the sandbox, whose /v2/exchange/range ("Exchange range",
    ChangeNOW API v2, https://documenter.getpostman.com/view/8180765/SVfTPnM8) answers maxAmount
    0.01 ETH (30 USD at the sandbox's 3000 USD per ETH)."""
    route_exchanges_to(settings, "changenow", urls={"changenow": sandbox.base_url})
    monkeypatch.setenv("CHANGENOW_API_KEY", CHANGENOW_TEST_API_KEY)
    reset_sandbox(sandbox)
    inject(sandbox, {"max_amount_usd": "30"})
    yield
    reset_sandbox(sandbox)


def claimed_by(conversion_id: int | None) -> list[int]:
    return sorted(PayoutAccumulation.objects.filter(batch_conversion_id=conversion_id).values_list("pk", flat=True))


@pytest.mark.slow
def test_over_the_exchange_maximum_the_oldest_rows_that_fit_are_claimed_and_the_rest_wait(
    threshold_client: Client, changenow_with_a_maximum: None, caplog: pytest.LogCaptureFixture
) -> None:
    oversize = pending_rows(threshold_client, 1, eth="0.02")[0]  # alone over the maximum: never claimed
    fitting = pending_rows(threshold_client, 4, eth="0.004")  # 0.016 ETH in all: two batches of 0.008

    with caplog.at_level("ERROR"):
        first = check_threshold()
    conversion = BatchConversion.objects.get(pk=first.conversion_id)
    assert claimed_by(conversion.pk) == [fitting[0].pk, fitting[1].pk]  # the oldest, up to 0.01 ETH
    assert (conversion.row_count, conversion.total_eth, conversion.total_net_usd) == (
        2,
        Decimal("0.008"),
        Decimal("19.40"),
    )
    # The row that can never fit one exchange is alerted even though a conversion was made.
    assert any(
        "ALERT conversion_waiting" in record.getMessage()
        and "1 pending row(s) each over the providers' highest maximum 0.01 ETH" in record.getMessage()
        for record in caplog.records
    )

    second = check_threshold()  # the rest: 0.02 (passed over) + 2 x 0.004, 29.10 USD pending
    assert claimed_by(second.conversion_id) == [fitting[2].pk, fitting[3].pk]
    third = check_threshold()  # only the oversize row is left: under the threshold alone
    assert third.conversion_id is None
    assert PayoutAccumulation.objects.get(pk=oversize.pk).status == AccumulationStatus.PENDING


@pytest.mark.slow
def test_when_no_row_fits_under_the_maximum_nothing_is_claimed_and_it_says_why(
    threshold_client: Client, changenow_with_a_maximum: None
) -> None:
    pending_rows(threshold_client, 3, eth="0.011")
    drawn = conversion_ids_drawn()
    check = check_threshold()
    assert check.conversion_id is None
    assert "3 pending row(s) each over the providers' highest maximum 0.01 ETH" in check.waiting_for
    assert not PayoutAccumulation.objects.exclude(status=AccumulationStatus.PENDING).exists()
    assert conversion_ids_drawn() == drawn
