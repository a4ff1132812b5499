"""The distribution streamed in chunks on PostgreSQL: exactly the reference allocation
(`largest_remainder_split`, then `percent_of` per row), and the database-side invariant check."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings

from batching.distribution import DistributionError, distribute_conversion, largest_remainder_split
from batching.models import BatchConversion
from payments import accumulation
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payments.selectors import distribution_weights
from payouts.exchange_batches.states import BatchStatus
from pgp_project.money import ETH_PLACES, USDT_PLACES, USDT_QUANTUM, from_base_units, percent_of, to_base_units

from ..factories import BatchConversionFactory, HostPaymentFactory

pytestmark = pytest.mark.django_db

ROWS = 20_000


def make_rows(client: Client, rows: int) -> None:
    """`rows` pending ETH rows: varied weights (18 dp ones too), every fifth one equal to the
    others of its kind (ties), and fee snapshots that exercise the half-up rounding."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO payments_payment (provider_payment_id, status, order_id, order_description, price_amount,
                price_currency, pay_currency, outcome_amount, outcome_currency, client_id, user_id,
                routing_status, hold_reason, raw_payload, created_at, updated_at)
            SELECT 9000000 + g, 'finished', 'PGP-1|' || %s, '', 10 + (g %% 50), 'usd', 'eth',
                   CASE WHEN g %% 5 = 0 THEN 0.004
                        WHEN g %% 7 = 0 THEN 0.000000000000000001 * g
                        ELSE 0.001 + (g %% 997) * 0.000000013579246813 END,
                   'eth', %s, 1, 'routed', '', '{}'::jsonb, now(), now()
              FROM generate_series(1, %s) AS g
            """,
            [client.external_id, client.pk, rows],
        )
        cursor.execute(
            """
            INSERT INTO payout_accumulation (payment_id, client_id, user_id, status, hold_reason, gross_usd,
                fee_percent, fee_usd, net_usd, source_asset, source_currency, source_amount, wallet_address,
                payout_currency, payout_network, created_at, updated_at)
            SELECT p.id, p.client_id, 1, 'pending', '', p.price_amount, f.pct, round(p.price_amount * f.pct / 100, 2),
                   p.price_amount - round(p.price_amount * f.pct / 100, 2), 'eth', 'eth', p.outcome_amount,
                   %s, 'usdt', 'eth', now(), now()
              FROM payments_payment p
              CROSS JOIN LATERAL (SELECT (ARRAY[3.00, 0.00, 2.50, 7.25, 99.99])[1 + p.id %% 5] AS pct) f
             WHERE p.client_id = %s
            """,
            [client.wallet_address, client.pk],
        )


def claimed_conversion(client: Client, rows: int, equal_weight: Decimal | None = None) -> BatchConversion:
    """Rows claimed into a conversion that is where distribution starts (the chain skipped);
    with `equal_weight`, every row contributed that much ETH."""
    make_rows(client, rows)
    if equal_weight is not None:
        PayoutAccumulation.objects.update(source_amount=equal_weight)
    # The claim check_threshold makes, with nothing to wait for (no threshold, no exchange range).
    claim = accumulation.claim_for_conversion_when_due(
        net_usd_at_least=Decimal(0), eth_at_least=Decimal(0), conversion_table=BatchConversion._meta.db_table
    )
    assert claim.conversion_id is not None
    conversion = BatchConversionFactory.create(pk=claim.conversion_id)
    claimed = claim.claimed
    amounts = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk).values_list(
        "gross_usd", "net_usd", "source_amount"
    )
    # The claim's totals, summed in SQL, are exactly those of the claimed rows.
    assert claimed.rows == rows
    assert claimed.gross_usd == sum(a[0] for a in amounts)
    assert claimed.net_usd == sum(a[1] for a in amounts)
    assert claimed.eth == sum(a[2] for a in amounts)
    BatchConversion.objects.filter(pk=conversion.pk).update(
        status=BatchStatus.EXCHANGING,
        exchange_id=f"stream-{conversion.pk}",
        host_payment=HostPaymentFactory.create(),
        total_gross_usd=claimed.gross_usd,
        total_net_usd=claimed.net_usd,
        total_eth=claimed.eth,
        row_count=claimed.rows,
    )
    return BatchConversion.objects.get(pk=conversion.pk)


def test_the_rows_are_read_a_chunk_at_a_time(threshold_client: Client) -> None:
    # The selector the distribution reads through, on the real database (a server-side cursor:
    # inside a transaction): never more than a chunk in memory at once, every row exactly once.
    conversion = claimed_conversion(threshold_client, 2_500)
    with transaction.atomic():
        chunks = list(distribution_weights(conversion.pk, 1_000))
    assert [len(chunk) for chunk in chunks] == [1_000, 1_000, 500]
    expected = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk).values_list("id", "source_amount")
    assert sorted(row for chunk in chunks for row in chunk) == sorted(
        (row_id, to_base_units(eth, ETH_PLACES)) for row_id, eth in expected
    )


@pytest.mark.parametrize("received", [Decimal("98765.432101"), Decimal("0.012345")])
@override_settings(PGP_DISTRIBUTION_CHUNK_ROWS=1_000)
def test_streamed_distribution_matches_the_reference_rule_exactly(threshold_client: Client, received: Decimal) -> None:
    conversion = claimed_conversion(threshold_client, ROWS)

    totals = distribute_conversion(conversion.pk, received, "0xstream")

    assert totals is not None
    assert totals.rows == ROWS
    assert_reference_allocation(conversion, received)


def assert_reference_allocation(conversion: BatchConversion, received: Decimal) -> list[Decimal]:
    """Every row holds exactly what `largest_remainder_split` then `percent_of` give it, and the
    conversion is completed with the parts summing to what was received; returns the parts."""
    rows = list(
        PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk)
        .order_by("id")
        .values_list("status", "source_amount", "fee_percent", "usdt_amount", "fee_usdt", "credit_usdt")
    )
    parts = largest_remainder_split(
        to_base_units(received, USDT_PLACES), [to_base_units(row[1], ETH_PLACES) for row in rows]
    )
    for (status, _, fee_percent, usdt, fee, credit), units in zip(rows, parts, strict=True):
        expected_usdt = from_base_units(units, USDT_PLACES)
        expected_fee = percent_of(expected_usdt, fee_percent, USDT_QUANTUM)
        assert (status, usdt, fee, credit) == (
            AccumulationStatus.CONVERTED,
            expected_usdt,
            expected_fee,
            expected_usdt - expected_fee,
        )
    conversion.refresh_from_db()
    assert conversion.status == BatchStatus.COMPLETED
    assert conversion.credit_usdt_total + conversion.fee_usdt_total == received == sum(r[3] for r in rows)
    return [r[3] for r in rows]


@pytest.mark.parametrize(("received", "extra_units"), [(Decimal("1.234567"), 567), (Decimal("0.002000"), 0)])
def test_equal_weights_give_the_leftover_units_to_the_earliest_rows(
    threshold_client: Client, received: Decimal, extra_units: int
) -> None:
    """Every remainder equal (all in one band of the histogram): the cut is found among ties, by
    id; and with no leftover unit at all, no row gets one."""
    conversion = claimed_conversion(threshold_client, 2_000, equal_weight=Decimal("0.004"))

    assert distribute_conversion(conversion.pk, received, "0xequal") is not None

    parts = assert_reference_allocation(conversion, received)
    floor = from_base_units(to_base_units(received, USDT_PLACES) // 2_000, USDT_PLACES)
    assert parts == [floor + USDT_QUANTUM] * extra_units + [floor] * (2_000 - extra_units)


def test_the_database_check_refuses_a_wrong_sum_and_nothing_is_written(threshold_client: Client) -> None:
    conversion = claimed_conversion(threshold_client, 50)
    first_row = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk).order_by("id").first()
    assert first_row is not None
    # What a wrong statement would leave behind, made by the database itself (no code of ours is
    # replaced): the first row credited one unit too rich, consistent in itself.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION one_unit_too_rich() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.usdt_amount := NEW.usdt_amount + 0.000001;
                NEW.credit_usdt := NEW.credit_usdt + 0.000001;
                RETURN NEW;
            END $$;
            """
        )
        cursor.execute(
            "CREATE TRIGGER one_unit_too_rich BEFORE UPDATE ON payout_accumulation FOR EACH ROW "
            f"WHEN (OLD.credit_usdt IS NULL AND NEW.credit_usdt IS NOT NULL AND NEW.id = {int(first_row.pk)}) "
            "EXECUTE FUNCTION one_unit_too_rich()"
        )

    with pytest.raises(DistributionError, match=r"credit .* \+ fee .* != received"):
        distribute_conversion(conversion.pk, Decimal("12.345678"), "0xwrong")

    conversion.refresh_from_db()
    assert conversion.status == BatchStatus.EXCHANGING
    assert not PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk, credit_usdt__isnull=False).exists()
    assert (
        PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk, status=AccumulationStatus.SWAPPING).count()
        == 50
    )
