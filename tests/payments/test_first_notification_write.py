"""The one-statement write of a first notification (payments/first_notification.py) writes the
rows Django's own save() writes, and nothing at all when the payment exists."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import DataError, connection, transaction

from payments.first_notification import write_first_notification
from payments.models import Client, Payment, PaymentEvent, PayoutAccumulation

pytestmark = pytest.mark.django_db
GENERATED = {"id", "payment_id", "provider_payment_id", "created_at", "updated_at", "received_at"}


def rows_for(provider_payment_id: int, client: Client) -> tuple[Payment, PayoutAccumulation, PaymentEvent]:
    payment = Payment(
        provider_payment_id=provider_payment_id,
        status="finished",
        order_id="PGP-7|-1001234567890",
        order_description="",
        price_amount=Decimal("19.99"),
        price_currency="usd",
        pay_amount=Decimal("0.0062"),
        pay_currency="eth",
        actually_paid=Decimal("0.006200000000000000"),
        outcome_amount=Decimal("0.00612345"),
        outcome_currency="eth",
        client=client,
        user_id=7,
        routing_status="routed",
        raw_payload={"price_amount": "19.99", "note": "é \\u0000 ☃", "nested": {"a": [1, "2.50"]}},
    )
    row = PayoutAccumulation(
        payment=payment,
        client=client,
        user_id=7,
        status="pending",
        source_asset="eth",
        source_currency="eth",
        source_amount=Decimal("0.00612345"),
        gross_usd=Decimal("19.99"),
        fee_percent=Decimal("3.00"),
        fee_usd=Decimal("0.60"),
        net_usd=Decimal("19.39"),
        wallet_address=client.wallet_address,
        payout_currency=client.payout_currency,
        payout_network=client.payout_network,
    )
    event = PaymentEvent(
        payment=payment,
        provider_payment_id=provider_payment_id,
        reported_status="finished",
        outcome="applied",
        reason="first notification",
        signature_valid=True,
        body='{"payment_id": 1}',
        body_sha256="0" * 64,
        body_size=17,
        remote_addr="::ffff:127.0.0.1",
    )
    return payment, row, event


def stored(provider_payment_id: int) -> list[dict[str, Any]]:
    payment = Payment.objects.filter(provider_payment_id=provider_payment_id)
    return [
        {key: value for key, value in values.items() if key not in GENERATED}
        for values in (
            payment.values().get(),
            PayoutAccumulation.objects.filter(payment__in=payment).values().get(),
            PaymentEvent.objects.filter(payment__in=payment).values().get(),
        )
    ]


def test_the_rows_are_those_django_saves(threshold_client: Client):
    payment, row, event = rows_for(1, threshold_client)
    assert write_first_notification(payment, row, event)
    assert payment.pk == Payment.objects.get(provider_payment_id=1).pk

    payment, row, event = rows_for(2, threshold_client)
    payment.save()
    row.save()
    event.save()

    assert stored(1) == stored(2)
    written = Payment.objects.get(provider_payment_id=1)
    assert written.created_at is not None
    assert written.updated_at is not None


def test_nothing_is_written_when_the_payment_exists(threshold_client: Client):
    payment, row, event = rows_for(3, threshold_client)
    assert write_first_notification(payment, row, event)
    again, again_row, again_event = rows_for(3, threshold_client)
    again.price_amount = Decimal("1.00")
    assert not write_first_notification(again, again_row, again_event)
    assert again.pk is None
    assert Payment.objects.get().price_amount == Decimal("19.99")
    assert PayoutAccumulation.objects.count() == 1
    assert PaymentEvent.objects.count() == 1


def test_a_payment_without_a_row_writes_no_row(threshold_client: Client):
    payment, _, event = rows_for(4, threshold_client)
    payment.routing_status = "held"
    payment.hold_reason = "price currency 'eur' is not USD"
    assert write_first_notification(payment, None, event)
    assert PayoutAccumulation.objects.count() == 0
    assert PaymentEvent.objects.get().payment_id == payment.pk


@pytest.mark.django_db(transaction=True)
def test_the_write_is_prepared_once_per_connection(threshold_client: Client):
    connection.close()
    for provider_payment_id in (5, 6, 7):
        payment, row, event = rows_for(provider_payment_id, threshold_client)
        assert write_first_notification(payment, row, event)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%payout_accumulation%'")
        assert cursor.fetchone()[0] == 1


@pytest.mark.parametrize(
    "variant",
    ["usdt_row_credited_at_once", "held_row_in_another_currency", "ipv4_address", "no_address"],
)
def test_other_rows_are_those_django_saves_too(threshold_client: Client, variant: str):
    def variant_of(provider_payment_id: int) -> tuple[Payment, PayoutAccumulation, PaymentEvent]:
        payment, row, event = rows_for(provider_payment_id, threshold_client)
        if variant == "usdt_row_credited_at_once":
            row.source_asset, row.status, row.source_currency = "usdterc20", "converted", "usdterc20"
            row.usdt_amount, row.fee_usdt, row.credit_usdt = Decimal("19.99"), Decimal("0.5997"), Decimal("19.3903")
            row.converted_at = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)
        elif variant == "held_row_in_another_currency":
            row.source_asset, row.status, row.source_currency = "other", "held", "trx"
            row.hold_reason = "outcome currency 'trx' is neither ETH nor USDT ERC-20"
        elif variant == "ipv4_address":
            event.remote_addr = "203.0.113.7"
        else:
            event.remote_addr = None
        return payment, row, event

    assert write_first_notification(*variant_of(11))
    payment, row, event = variant_of(12)
    payment.save()
    row.save()
    event.save()
    assert stored(11) == stored(12)


def test_an_over_long_value_is_refused_as_save_refuses_it(threshold_client: Client):
    # The placeholders are cast to the column's type without its length: a cast to varchar(128)
    # would cut the address silently where the column refuses it.
    payment, row, event = rows_for(13, threshold_client)
    row.wallet_address = "0x" + "a" * 200
    with pytest.raises(DataError), transaction.atomic():
        write_first_notification(payment, row, event)
    assert not Payment.objects.filter(provider_payment_id=13).exists()
