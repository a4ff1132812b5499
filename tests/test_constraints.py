"""The database itself refuses rows that break the money and state rules."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, Payment, PayoutAccumulation, SourceAsset
from payouts.models import HostPayment, PayoutBatch
from pgp_project.operations.models import RuntimeSettings

pytestmark = pytest.mark.django_db


def refused(model: type, **fields: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**fields)


def make_payment(provider_id: int = 1) -> Payment:
    return Payment.objects.create(
        provider_payment_id=provider_id,
        status="finished",
        order_id="PGP-1|-100",
        price_amount=Decimal("10.00"),
        price_currency="usd",
        outcome_amount=Decimal("0.003"),
        outcome_currency="eth",
        raw_payload={},
    )


def row_fields(payment: Payment, client: Client, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "payment": payment,
        "client": client,
        "user_id": 1,
        "status": AccumulationStatus.PENDING,
        "gross_usd": Decimal("10.00"),
        "fee_percent": Decimal("3.00"),
        "fee_usd": Decimal("0.30"),
        "net_usd": Decimal("9.70"),
        "source_asset": SourceAsset.ETH,
        "source_currency": "eth",
        "source_amount": Decimal("0.003"),
        "wallet_address": client.wallet_address,
        "payout_currency": "usdt",
        "payout_network": "eth",
    }
    fields.update(overrides)
    return fields


def test_payment_id_is_unique() -> None:
    make_payment(1)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_payment(1)


def test_unknown_payment_status_refused() -> None:
    refused(
        Payment,
        provider_payment_id=2,
        status="bogus",
        order_id="x",
        price_amount=1,
        price_currency="usd",
        raw_payload={},
    )


def test_one_accumulation_row_per_payment(threshold_client: Client) -> None:
    payment = make_payment()
    PayoutAccumulation.objects.create(**row_fields(payment, threshold_client))
    refused(PayoutAccumulation, **row_fields(payment, threshold_client))


@pytest.mark.parametrize(
    "overrides",
    [
        {"net_usd": Decimal("9.71")},  # net != gross - fee
        {"fee_usd": Decimal("-0.30"), "net_usd": Decimal("10.30")},
        {"fee_percent": Decimal("100.00")},
        {"status": "teleported"},
        {"status": AccumulationStatus.SWAPPING},  # swapping without a conversion
        {"status": AccumulationStatus.CONVERTED},  # converted without USDT amounts
        {"status": AccumulationStatus.HELD},  # held without a reason
        {"status": AccumulationStatus.PENDING, "source_asset": SourceAsset.OTHER},
        {
            "status": AccumulationStatus.CONVERTED,
            "usdt_amount": Decimal("10"),
            "fee_usdt": Decimal("0.3"),
            "credit_usdt": Decimal("9.8"),  # fee + credit != amount
        },
        {
            "status": AccumulationStatus.IN_PAYOUT,  # in payout without a payout batch
            "usdt_amount": Decimal("10"),
            "fee_usdt": Decimal("0.3"),
            "credit_usdt": Decimal("9.7"),
        },
    ],
)
def test_bad_accumulation_rows_refused(threshold_client: Client, overrides: dict) -> None:
    refused(PayoutAccumulation, **row_fields(make_payment(), threshold_client, **overrides))


def test_client_rules(threshold_client: Client) -> None:
    base = {
        "name": "x",
        "payout_currency": "usdt",
        "payout_network": "eth",
        "wallet_address": threshold_client.wallet_address,
    }
    refused(Client, external_id="a", payout_strategy="threshold", payout_threshold_usd=0, **base)
    refused(Client, external_id="b", payout_strategy="sometimes", payout_threshold_usd=5, **base)
    refused(Client, external_id=threshold_client.external_id, payout_strategy="instant", **base)
    refused(Client, external_id="d", payout_strategy="instant", fee_percent_override=Decimal("120"), **base)


def test_conversion_and_host_payment_rules() -> None:
    refused(BatchConversion, threshold_usd=20, total_gross_usd=0, total_net_usd=0, total_eth=0, row_count=0)
    refused(
        BatchConversion,
        status="swap_created",  # no exchange id
        threshold_usd=20,
        total_gross_usd=21,
        total_net_usd=20,
        total_eth=Decimal("0.01"),
        row_count=1,
    )
    conversion = BatchConversion.objects.create(
        threshold_usd=20, total_gross_usd=21, total_net_usd=20, total_eth=Decimal("0.01"), row_count=1
    )
    host = {
        "asset": "eth",
        "amount": Decimal("0.01"),
        "amount_base_units": 10**16,
        "from_address": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "to_address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    }
    refused(HostPayment, **host)  # belongs to no batch
    refused(HostPayment, conversion=conversion, status="signed", **host)  # signed without nonce/tx
    HostPayment.objects.create(conversion=conversion, **host)
    refused(HostPayment, conversion=conversion, **host)  # one host payment per batch


def test_payout_batch_rules(threshold_client: Client) -> None:
    base = {
        "client": threshold_client,
        "wallet_address": threshold_client.wallet_address,
        "payout_currency": "usdt",
        "payout_network": "eth",
        "source_currency": "usdterc20",
    }
    refused(PayoutBatch, source_amount=0, total_usdt=0, row_count=0, **base)
    refused(PayoutBatch, kind="instant", source_amount=1, **base)  # instant without its payment
    refused(PayoutBatch, status="approved", source_amount=1, total_usdt=1, row_count=1, **base)  # no approver


def test_runtime_settings_is_a_single_row() -> None:
    RuntimeSettings.objects.get_or_create(pk=1)
    refused(RuntimeSettings, pk=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        RuntimeSettings.objects.filter(pk=1).update(micro_batch_threshold_usd=0)
