"""The database itself refuses rows that break the money and state rules."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, models, transaction

from evm_chain.models import EvmTransfer
from payments.models import AccumulationStatus, Client, SourceAsset
from payouts.models import PayoutBatch
from pgp_project.operations.models import RuntimeSettings

from ..factories import (
    AccumulationFactory,
    BatchConversionFactory,
    HostPaymentFactory,
    PaymentFactory,
)

pytestmark = pytest.mark.django_db


def refused(model: type[models.Model], **fields: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        model._default_manager.create(**fields)


def refused_by_factory(factory: type, **fields: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        factory(**fields)


def test_payment_id_is_unique() -> None:
    PaymentFactory(provider_payment_id=1)
    refused_by_factory(PaymentFactory, provider_payment_id=1)


def test_unknown_payment_status_refused() -> None:
    refused_by_factory(PaymentFactory, status="bogus")


def test_one_accumulation_row_per_payment(threshold_client: Client) -> None:
    payment = PaymentFactory()
    AccumulationFactory(payment=payment, client=threshold_client)
    refused_by_factory(AccumulationFactory, payment=payment, client=threshold_client)


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
    refused_by_factory(AccumulationFactory, client=threshold_client, **overrides)


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
    refused_by_factory(BatchConversionFactory, total_gross_usd=0, total_net_usd=0, total_eth=0, row_count=0)
    refused_by_factory(BatchConversionFactory, status="swap_created")  # no exchange id
    # An exchange is always with a named provider, and a provider's exchange ids are its own.
    refused_by_factory(BatchConversionFactory, status="swap_created", exchange_id="x", exchange_provider="")
    BatchConversionFactory(status="swap_created", exchange_id="same-id", exchange_provider="changenow")
    BatchConversionFactory(status="swap_created", exchange_id="same-id", exchange_provider="other")
    refused_by_factory(BatchConversionFactory, status="swap_created", exchange_id="same-id", exchange_provider="other")
    BatchConversionFactory(exchange_provider="")  # not routed yet: no exchange, no provider
    refused_by_factory(BatchConversionFactory, status="funding", exchange_id="x")  # funding without a payment
    refused_by_factory(HostPaymentFactory, owner_kind="")  # funds no kind of batch
    refused_by_factory(HostPaymentFactory, status="signed")  # signed without a transaction
    host_payment = HostPaymentFactory()
    BatchConversionFactory(host_payment=host_payment)
    refused_by_factory(BatchConversionFactory, host_payment=host_payment)  # one batch per host payment


def test_no_two_host_payments_share_a_nonce_from_one_wallet() -> None:
    first, second = HostPaymentFactory.create(), HostPaymentFactory.create()
    fields = {
        "chain": "eth",
        "sender": first.from_address,
        "nonce": 7,
        "gas_limit": 21000,
        "max_fee_per_gas": 1,
        "max_priority_fee_per_gas": 1,
    }
    EvmTransfer.objects.create(host_payment=first, **fields)
    refused(EvmTransfer, host_payment=second, **fields)
    # The same key's nonce 7 on another chain is another slot.
    EvmTransfer.objects.create(host_payment=second, **{**fields, "chain": "l2"})


def test_payout_batch_rules(threshold_client: Client) -> None:
    base = {
        "client": threshold_client,
        "wallet_address": threshold_client.wallet_address,
        "payout_currency": "usdt",
        "payout_network": "eth",
        "source_currency": "usdterc20",
        "exchange_provider": "direct",
    }
    refused(PayoutBatch, source_amount=0, total_usdt=0, row_count=0, **base)
    refused(PayoutBatch, kind="instant", source_amount=1, **base)  # instant without its payment
    refused(PayoutBatch, status="approved", source_amount=1, total_usdt=1, row_count=1, **base)  # no approver


def test_runtime_settings_is_a_single_row() -> None:
    RuntimeSettings.objects.get_or_create(pk=1)
    refused(RuntimeSettings, pk=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        RuntimeSettings.objects.filter(pk=1).update(micro_batch_threshold_usd=0)
