"""Test objects built with factory_boy: each factory gives a valid row by default (every
database constraint satisfied), and a test overrides only what it is about."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User

from batching.models import BatchConversion
from payments.models import AccumulationStatus, Client, Payment, PayoutAccumulation, PayoutStrategy, SourceAsset
from payouts.models import HostPayment, PayoutBatch, PayoutKind

HOT_WALLET = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil account 0
CLIENT_WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1


class StaffUserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"operator{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True
    is_superuser = True
    password = factory.django.Password("pw")


class ClientFactory(factory.django.DjangoModelFactory[Client]):
    class Meta:
        model = Client
        django_get_or_create = ("external_id",)

    external_id = factory.Sequence(lambda n: f"-100{n:07d}")
    name = factory.LazyAttribute(lambda client: f"channel {client.external_id}")
    payout_strategy = PayoutStrategy.THRESHOLD
    payout_threshold_usd = Decimal("50.00")
    payout_currency = "usdt"
    payout_network = "eth"
    wallet_address = CLIENT_WALLET


class PaymentFactory(factory.django.DjangoModelFactory[Payment]):
    class Meta:
        model = Payment

    provider_payment_id = factory.Sequence(lambda n: 10_000_000 + n)
    status = "finished"
    order_id = "PGP-1|-100"
    price_amount = Decimal("10.00")
    price_currency = "usd"
    outcome_amount = Decimal("0.003")
    outcome_currency = "eth"
    raw_payload = factory.LazyFunction(dict)


class AccumulationFactory(factory.django.DjangoModelFactory[PayoutAccumulation]):
    """A pending ETH row of a finished threshold payment (3 % fee)."""

    class Meta:
        model = PayoutAccumulation

    payment = factory.SubFactory(PaymentFactory)
    client = factory.SubFactory(ClientFactory)
    user_id = 1
    status = AccumulationStatus.PENDING
    gross_usd = Decimal("10.00")
    fee_percent = Decimal("3.00")
    fee_usd = Decimal("0.30")
    net_usd = Decimal("9.70")
    source_asset = SourceAsset.ETH
    source_currency = "eth"
    source_amount = Decimal("0.003")
    wallet_address = factory.SelfAttribute("client.wallet_address")
    payout_currency = "usdt"
    payout_network = "eth"


class HostPaymentFactory(factory.django.DjangoModelFactory[HostPayment]):
    class Meta:
        model = HostPayment

    owner_kind = "conversion"
    chain = "eth"
    asset = "eth"
    amount = Decimal("0.01")
    amount_base_units = 10**16
    from_address = HOT_WALLET
    to_address = CLIENT_WALLET


class BatchConversionFactory(factory.django.DjangoModelFactory[BatchConversion]):
    class Meta:
        model = BatchConversion

    exchange_provider = "changenow"
    threshold_usd = Decimal("20")
    total_gross_usd = Decimal("21")
    total_net_usd = Decimal("20")
    total_eth = Decimal("0.01")
    row_count = 1


class PayoutBatchFactory(factory.django.DjangoModelFactory[PayoutBatch]):
    """A threshold payout of 19.4 USDT to a USDT ERC-20 wallet."""

    class Meta:
        model = PayoutBatch

    kind = PayoutKind.THRESHOLD
    client = factory.SubFactory(ClientFactory)
    exchange_provider = "direct"
    wallet_address = factory.SelfAttribute("client.wallet_address")
    payout_currency = "usdt"
    payout_network = "eth"
    source_currency = "usdterc20"
    source_amount = Decimal("19.4")
    total_usdt = Decimal("19.4")
    row_count = 1
