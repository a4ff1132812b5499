"""Payouts are approved by the value they send, not by the invoice, and an outcome worth far more
or less than its invoice is held for review (the attack run: a 30 USD invoice with a 970 ETH
outcome went straight to funding)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.utils import timezone

from payments.models import Client, Payment, PayoutAccumulation, PayoutStrategy, ReferencePrice, RoutingStatus
from payments.reference_prices import refresh_reference_prices
from payments.routing import reroute_held_payment
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, PayoutBatch
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.selectors import get_runtime_settings
from standins.sandbox_changenow import SandboxChangeNow

from ..conftest import ipn_body, post_ipn, wait_until
from ..factories import ClientFactory
from ..flows import route_exchanges_to


def set_eth_price(usd: str, *, age_seconds: int = 0) -> None:
    ReferencePrice.objects.update_or_create(
        asset_symbol="eth",
        defaults={
            "usd_price": Decimal(usd),
            "source": "test",
            "fetched_at": timezone.now() - timedelta(seconds=age_seconds),
        },
    )


def instant(client: Client) -> Client:
    client.payout_strategy = PayoutStrategy.INSTANT
    client.save()
    return client


# --- the invoice is checked against what the outcome is worth ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("strategy", [PayoutStrategy.INSTANT, PayoutStrategy.THRESHOLD])
def test_a_30_usd_invoice_with_a_970_eth_outcome_is_held_and_pays_nothing(
    client: HttpClient, threshold_client: Client, strategy: str
) -> None:
    threshold_client.payout_strategy = strategy
    threshold_client.save()
    set_eth_price("3000")
    response = post_ipn(client, ipn_body(price_amount="30.00", outcome_amount="970"))
    assert response.status_code == 200
    payment = Payment.objects.get()
    assert payment.routing_status == RoutingStatus.HELD
    assert payment.hold_reason.startswith("overpaid: the outcome 970 eth is worth about 2910000.00 USD")
    assert not PayoutBatch.objects.exists()
    assert not PayoutAccumulation.objects.exists()


@pytest.mark.django_db
def test_an_underpayment_beyond_the_tolerance_is_held_and_one_within_it_is_routed(
    client: HttpClient, threshold_client: Client
) -> None:
    set_eth_price("3000")  # 0.01 ETH is worth 30 USD; the tolerance is 10 %
    post_ipn(client, ipn_body(payment_id=1, price_amount="40.00", outcome_amount="0.01"))
    post_ipn(client, ipn_body(payment_id=2, price_amount="32.00", outcome_amount="0.01"))
    post_ipn(client, ipn_body(payment_id=3, price_amount="28.00", outcome_amount="0.01"))
    routing = dict(Payment.objects.values_list("provider_payment_id", "routing_status"))
    assert routing == {1: RoutingStatus.HELD, 2: RoutingStatus.ROUTED, 3: RoutingStatus.ROUTED}
    assert Payment.objects.get(provider_payment_id=1).hold_reason.startswith("underpaid:")


@pytest.mark.django_db
def test_without_a_fresh_reference_price_payments_are_routed_as_before(
    client: HttpClient, threshold_client: Client
) -> None:
    set_eth_price("3000", age_seconds=16 * 60)  # older than PGP_REFERENCE_PRICE_MAX_AGE_SECONDS
    post_ipn(client, ipn_body(price_amount="30.00", outcome_amount="970"))
    assert Payment.objects.get().routing_status == RoutingStatus.ROUTED


@pytest.mark.django_db
def test_an_operator_routes_a_checked_payment_and_its_payout_is_measured_by_its_worth(
    client: HttpClient, threshold_client: Client, django_user_model
) -> None:
    instant(threshold_client)
    set_eth_price("3000")
    post_ipn(client, ipn_body(price_amount="30.00", outcome_amount="970"))
    operator = django_user_model.objects.create_user("checker", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="resolve_held_payment"))
    payment = reroute_held_payment(Payment.objects.get().pk, actor=operator)
    assert payment.routing_status == RoutingStatus.ROUTED
    # Routed by a person, but the payout it opens waits for approval: it sends ~2.8M USD of ETH.
    assert PayoutBatch.objects.get().status == BatchStatus.AWAITING_APPROVAL
    assert AuditEvent.objects.filter(subject_type="payment", action="reroute", actor=operator).exists()


@pytest.mark.django_db
def test_an_instant_payout_opens_awaiting_approval_when_what_it_sends_is_above_the_limit(
    client: HttpClient, threshold_client: Client
) -> None:
    instant(threshold_client)
    runtime = get_runtime_settings()
    runtime.payout_approval_limit_usdt = Decimal("500")
    runtime.save()
    set_eth_price("3000")
    # A 600 USD invoice paid in full: the invoice and the outcome agree, both above the limit.
    post_ipn(client, ipn_body(payment_id=1, price_amount="600.00", outcome_amount="0.2"))
    # 450 USD of ETH after the fee, under the limit.
    post_ipn(client, ipn_body(payment_id=2, price_amount="480.00", outcome_amount="0.16"))
    statuses = dict(PayoutBatch.objects.values_list("payment__provider_payment_id", "status"))
    assert statuses == {1: BatchStatus.AWAITING_APPROVAL, 2: BatchStatus.CREATED}


@pytest.mark.django_db
def test_the_reference_price_is_the_exchange_providers_quote(flow_environment: dict, sandbox: SandboxChangeNow) -> None:
    price = refresh_reference_prices()
    # The sandbox prices ETH at 3000 USD and takes its fee: the quote is a little under.
    assert Decimal("2900") < price.usd_price <= Decimal("3000")
    assert price.source == "changenow"
    again = refresh_reference_prices()
    assert ReferencePrice.objects.count() == 1
    assert again.fetched_at >= price.fetched_at


# --- before anything is sent, the payout is measured by a quote for exactly what it sends ---------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_instant_payout_worth_more_than_the_limit_waits_for_approval_before_sending(
    celery_worker_process,
) -> None:
    """No reference price at intake (the job has not run): the 30 USD invoice passes, and the flow
    quotes the 1 ETH it would send before creating any exchange."""
    client = ClientFactory.create(
        external_id="-100901",
        payout_strategy=PayoutStrategy.INSTANT,
        payout_currency="usdc",
        payout_network="eth",
        wallet_address="0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    )
    assert not ReferencePrice.objects.exists()
    body = ipn_body(payment_id=90001, order_id="PGP-9|-100901", price_amount="30.00", outcome_amount="1.0")
    assert post_ipn(HttpClient(), body).status_code == 200
    batch = PayoutBatch.objects.get(client=client)
    batch = wait_until(
        lambda: PayoutBatch.objects.filter(pk=batch.pk, status=BatchStatus.AWAITING_APPROVAL).first(), timeout=60
    )
    assert batch.sent_value_usdt > Decimal("2800")  # 0.97 ETH at the sandbox's ~2970 USDT
    assert batch.exchange_id is None
    assert not HostPayment.objects.exists()
    reasons = list(
        AuditEvent.objects.filter(subject_type="payout", subject_id=batch.pk).values_list("reason", flat=True)
    )
    assert any("above the approval limit of 1000" in reason for reason in reasons), reasons


@pytest.mark.django_db
def test_a_reference_price_that_goes_stale_is_alerted_once_per_repeat_period(settings, caplog) -> None:
    """The provider cannot be reached (nothing listens on the port): the job does not fail, and
    the stale price it leaves is an ALERT line, not silence, repeated only after the period."""
    from payments.tasks import refresh_reference_prices as refresh_task

    route_exchanges_to(settings, "changenow", urls={"changenow": "http://127.0.0.1:9"})
    set_eth_price("3000", age_seconds=16 * 60)
    with caplog.at_level("ERROR", logger="pgp.alerts"):
        refresh_task()
        refresh_task()
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT reference_price_stale")]
    assert len(alerts) == 1, alerts
    assert "asset=eth" in alerts[0]
    assert ReferencePrice.objects.get().usd_price == Decimal("3000")  # the old price is kept, marked stale
    set_eth_price("3000")  # fresh again: a failed refresh is no alert
    caplog.clear()
    with caplog.at_level("ERROR", logger="pgp.alerts"):
        refresh_task()
    assert not [r for r in caplog.records if "reference_price_stale" in r.getMessage()]
