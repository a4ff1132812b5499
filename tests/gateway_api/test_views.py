"""The endpoints: what each kind of key sees and may do, the refusals, and money as exact strings."""

import base64
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from gateway_api.models import ApiKeyUser
from payments.models import AccumulationStatus, Client
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent, PendingChange, PendingChangeStatus
from pgp_project.operations.pending_changes import confirm_change

from ..factories import (
    CLIENT_WALLET,
    AccumulationFactory,
    BatchConversionFactory,
    HostPaymentFactory,
    PaymentFactory,
    PayoutBatchFactory,
    StaffUserFactory,
)
from .conftest import Api

NEW_CLIENT = {
    "external_id": "-1009",
    "name": "new channel",
    "payout_strategy": "threshold",
    "payout_threshold_usd": "25.00",
    "payout_currency": "usdt",
    "payout_network": "eth",
    "wallet_address": CLIENT_WALLET,
}


def test_a_client_created_by_a_gateway_key_starts_inactive_with_its_activation_awaiting_an_operator(
    gateway: Api,
) -> None:
    answer = gateway.post("/api/v1/clients/", NEW_CLIENT)
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["client"]["is_active"] is False
    assert body["client"]["payout_threshold_usd"] == "25.00"
    change = PendingChange.objects.get(pk=body["activation"]["id"])
    assert change.status == PendingChangeStatus.PENDING
    assert change.changes["is_active"] == {"old": "False", "new": "True"}
    # Audited with the key's name, as the actor and in the reason.
    events = AuditEvent.objects.filter(subject_type="client", subject_id=body["client"]["id"])
    assert {event.action for event in events} == {"created", "change_requested"}
    assert all(gateway.key and gateway.key.name in event.reason for event in events)
    assert all(event.actor_id == gateway.key.user_id for event in events)  # type: ignore[union-attr]
    # An operator confirms it in the console, as for a client created in the admin.
    confirm_change(change.pk, StaffUserFactory.create())
    assert Client.objects.get(pk=body["client"]["id"]).is_active


def test_the_admins_validation_refuses_a_bad_client_and_writes_nothing(gateway: Api) -> None:
    for bad in (
        {**NEW_CLIENT, "wallet_address": "not-a-wallet"},
        {**NEW_CLIENT, "payout_threshold_usd": "0.00"},
        {**NEW_CLIENT, "payout_currency": "doge?"},
        {**NEW_CLIENT, "external_id": "has|pipe"},
        {**NEW_CLIENT, "fee_percent_override": "100.00"},
    ):
        answer = gateway.post("/api/v1/clients/", bad)
        assert answer.status_code == 400, (bad, answer.content)
    assert not Client.objects.exists()
    assert not PendingChange.objects.exists()


def test_a_change_of_a_money_control_is_only_requested(gateway: Api, shop: Client) -> None:
    new_wallet = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    answer = gateway.post(
        f"/api/v1/clients/{shop.pk}/changes/", {"wallet_address": new_wallet, "payout_threshold_usd": "75"}
    )
    assert answer.status_code == 202, answer.content
    change = answer.json()["change"]
    assert change["status"] == "pending"
    assert change["changes"]["payout_threshold_usd"] == {"old": "50.00", "new": "75.00"}
    shop.refresh_from_db()
    assert shop.wallet_address == CLIENT_WALLET  # unchanged until an operator confirms
    listed = gateway.get(f"/api/v1/clients/{shop.pk}/changes/").json()["results"]
    assert [row["id"] for row in listed] == [change["id"]]
    # Nothing to change: no change.
    same = gateway.post(f"/api/v1/clients/{shop.pk}/changes/", {"payout_threshold_usd": "50.00"})
    assert same.status_code == 202
    assert same.json() == {"change": None}
    # An invalid value is refused as in the admin.
    bad = gateway.post(f"/api/v1/clients/{shop.pk}/changes/", {"wallet_address": "nope"})
    assert bad.status_code == 400
    assert gateway.post(f"/api/v1/clients/{shop.pk}/changes/", {}).status_code == 400


def test_no_api_key_can_confirm_a_change_approve_or_operate(gateway: Api, shop: Client) -> None:
    change_id = gateway.post(f"/api/v1/clients/{shop.pk}/changes/", {"payout_threshold_usd": "80"}).json()["change"][
        "id"
    ]
    assert gateway.key is not None
    key_user = ApiKeyUser.objects.get(pk=gateway.key.user_id)
    for permission in (
        "operations.confirm_change",
        "payouts.approve_payout",
        "payouts.operate_batch",
        "payments.resolve_held_payment",
        "auth.change_user",
    ):
        assert not key_user.has_perm(permission)
    assert not key_user.is_staff
    assert not key_user.has_usable_password()
    with pytest.raises(PermissionDenied, match="may not confirm"):
        confirm_change(change_id, key_user)
    # No route of the API confirms, approves or operates, and the key opens no admin page.
    for path in (
        f"/api/v1/clients/{shop.pk}/changes/{change_id}/confirm/",
        "/api/v1/payouts/1/approve/",
        "/api/v1/payouts/1/cancel/",
    ):
        assert gateway.post(path, {}).status_code == 404
    admin = gateway.post(f"/admin/operations/pendingchange/{change_id}/change/", {})
    assert admin.status_code == 302
    assert "/login/" in admin["Location"]
    assert PendingChange.objects.get(pk=change_id).status == PendingChangeStatus.PENDING


def test_client_keys_read_their_own_client_only_and_write_nothing(
    shop_api: Api, shop: Client, other_shop: Client
) -> None:
    assert [c["id"] for c in shop_api.get("/api/v1/clients/").json()["results"]] == [shop.pk]
    assert shop_api.get(f"/api/v1/clients/{shop.pk}/").status_code == 200
    assert shop_api.post("/api/v1/clients/", NEW_CLIENT).status_code == 403
    assert shop_api.post(f"/api/v1/clients/{shop.pk}/changes/", {"payout_threshold_usd": "70"}).status_code == 403
    assert not PendingChange.objects.exists()


def _other_shops_rows(other_shop: Client) -> dict[str, int]:
    payment = PaymentFactory.create(client=other_shop)
    payout = PayoutBatchFactory.create(client=other_shop)
    return {"payment": payment.pk, "payout": payout.pk}


@pytest.mark.parametrize("who", ["shop", "none", "expired"])
def test_every_endpoint_refuses_another_clients_key_and_no_or_an_expired_key(
    who: str, request: pytest.FixtureRequest, other_shop: Client
) -> None:
    ids = _other_shops_rows(other_shop)
    api: Api = {
        "shop": lambda: request.getfixturevalue("shop_api"),
        "none": lambda: Api(None),
        "expired": lambda: request.getfixturevalue("expired_api"),
    }[who]()
    c = other_shop.pk
    range_ = {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    reads = [
        (f"/api/v1/clients/{c}/", {}),
        (f"/api/v1/clients/{c}/changes/", {}),
        (f"/api/v1/clients/{c}/balance/", {}),
        (f"/api/v1/clients/{c}/statement/", range_),
        (f"/api/v1/clients/{c}/statement.csv", range_),
        (f"/api/v1/payments/{ids['payment']}/", {}),
        (f"/api/v1/payouts/{ids['payout']}/", {}),
    ]
    writes = ["/api/v1/clients/", f"/api/v1/clients/{c}/changes/"]
    expected_read = {404} if who == "shop" else {401}
    expected_write = {403, 404} if who == "shop" else {401}
    for path, params in reads:
        assert api.get(path, params).status_code in expected_read, path
    for path in writes:
        assert api.post(path, {**NEW_CLIENT, "payout_threshold_usd": "99"}).status_code in expected_write, path
    for path in ("/api/v1/clients/", "/api/v1/payments/", "/api/v1/payouts/"):
        answer = api.get(path)
        if who == "shop":
            assert answer.status_code == 200
            assert all(row.get("client", row.get("id")) != c for row in answer.json()["results"]), path
        else:
            assert answer.status_code == 401, path
    assert not PendingChange.objects.exists()


def test_a_revoked_key_and_a_wrong_secret_are_refused(gateway: Api) -> None:
    assert gateway.key is not None
    assert gateway.secret is not None
    wrong = gateway.secret[:-1] + ("x" if gateway.secret[-1] != "x" else "y")
    assert Api(wrong).get("/api/v1/clients/").status_code == 401
    assert Api("nodot").get("/api/v1/clients/").status_code == 401
    gateway.key.revoked = True
    gateway.key.save()
    assert gateway.get("/api/v1/clients/").status_code == 401


def test_the_balance_gives_each_state_as_an_exact_string(shop_api: Api, shop: Client) -> None:
    AccumulationFactory.create(client=shop, net_usd=Decimal("9.70"))
    AccumulationFactory.create(
        client=shop, status=AccumulationStatus.SWAPPING, batch_conversion_id=BatchConversionFactory.create().pk
    )
    converted = {"usdt_amount": Decimal("10.000001"), "fee_usdt": Decimal("0.3"), "credit_usdt": Decimal("9.700001")}
    AccumulationFactory.create(client=shop, status=AccumulationStatus.CONVERTED, **converted)
    payout = PayoutBatchFactory.create(client=shop)
    AccumulationFactory.create(client=shop, status=AccumulationStatus.IN_PAYOUT, payout_batch_id=payout.pk, **converted)
    AccumulationFactory.create(
        client=shop,
        status=AccumulationStatus.PAID_OUT,
        payout_batch_id=payout.pk,
        paid_out_at=timezone.now(),
        **converted,
    )
    AccumulationFactory.create(status=AccumulationStatus.CONVERTED, **converted)  # another client's
    refunded = PaymentFactory.create(client=shop, status="refunded")
    # A refunded payment's credit is never paid out: not in what a payout may claim.
    AccumulationFactory.create(client=shop, payment=refunded, status=AccumulationStatus.CONVERTED, **converted)
    balance = shop_api.get(f"/api/v1/clients/{shop.pk}/balance/").json()
    assert balance == {
        "client_id": shop.pk,
        "pending_usd": "9.70",
        "converting_usd": "9.70",
        "credited_usdt": "9.700001",
        "in_payout_usdt": "9.700001",
        "paid_out_usdt": "9.700001",
        "held_usd": "0.00",
        "payout_threshold_usd": "50.00",
        "fee_percent": balance["fee_percent"],
    }
    assert Decimal(balance["fee_percent"]) >= 0


def test_payouts_carry_their_transactions_with_explorer_links(shop_api: Api, shop: Client, settings: object) -> None:
    settings.PGP_BLOCK_EXPLORERS = {"eth": {"tx": "https://etherscan.io/tx/{}"}}  # type: ignore[attr-defined]
    tx = "0x" + "ab" * 32
    host = HostPaymentFactory.create(
        owner_kind="payout", asset="usdterc20", status="confirmed", tx_hash=tx, raw_transaction="f8"
    )
    payout = PayoutBatchFactory.create(
        client=shop, host_payment=host, status="completed", exchange_id="x-1", payout_tx_hash="0x" + "cd" * 32
    )
    body = shop_api.get(f"/api/v1/payouts/{payout.pk}/").json()
    assert body["source_amount"] == "19.400000000000000000"
    assert body["transactions"][0] == {
        "role": "funding",
        "network": "eth",
        "tx_hash": tx,
        "explorer_url": f"https://etherscan.io/tx/{tx}",
        "status": "confirmed",
    }
    assert body["transactions"][1]["role"] == "payout"
    assert body["transactions"][1]["explorer_url"].endswith("cd" * 32)


def test_lists_page_by_cursor_and_filter_by_time_and_status(gateway: Api, shop: Client) -> None:
    payments = [PaymentFactory.create(client=shop, status="finished" if n % 2 else "waiting") for n in range(5)]
    first = gateway.get("/api/v1/payments/", {"limit": 2}).json()
    assert [row["id"] for row in first["results"]] == [payments[4].pk, payments[3].pk]
    second = gateway.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [payments[2].pk, payments[1].pk]
    finished = gateway.get("/api/v1/payments/", {"status": "finished"}).json()["results"]
    assert {row["id"] for row in finished} == {payments[1].pk, payments[3].pk}
    assert gateway.get("/api/v1/payments/", {"created_after": "2999-01-01T00:00:00Z"}).json()["results"] == []
    assert gateway.get("/api/v1/payments/", {"created_before": "nonsense"}).status_code == 400
    assert gateway.get("/api/v1/payments/", {"status": "nonsense"}).status_code == 400
    assert gateway.get("/api/v1/payments/", {"created_before": ""}).status_code == 400
    assert gateway.get("/api/v1/payments/", {"created_after": "0359-01-23T10:51:15-22:35"}).status_code == 200
    assert gateway.get("/api/v1/payments/", {"limit": "0"}).status_code == 400
    assert gateway.get("/api/v1/payments/", {"limit": "x"}).status_code == 400
    assert gateway.get("/api/v1/payments/", {"created_afer": "2026-01-01T00:00:00Z"}).status_code == 400
    for cursor in ("garbage", base64.b64encode(b"p=not-a-time").decode(), base64.b64encode(b"p=a\x00b").decode()):
        assert gateway.get("/api/v1/payments/", {"cursor": cursor}).status_code in (400, 404)
    assert gateway.get("/api/v1/clients/", {"external_id": "a\x00b"}).status_code == 400
    assert gateway.get("/api/v1/payouts/", {"status": "completed"}).json()["results"] == []
    assert PayoutBatch.objects.count() == 0


def test_the_statement_as_json_and_csv(shop_api: Api, shop: Client) -> None:
    AccumulationFactory.create(client=shop, gross_usd=Decimal("10.00"))
    range_ = {"start": "2020-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z"}
    body = shop_api.get(f"/api/v1/clients/{shop.pk}/statement/", range_).json()
    assert [(e["type"], e["amount"], e["unit"], e["usd_value"]) for e in body["events"]] == [
        ("payment", "0.003", "ETH", "10.00")
    ]
    csv = shop_api.get(f"/api/v1/clients/{shop.pk}/statement.csv", range_)
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[0].startswith('"type","time","payment_id"')
    assert shop_api.get(f"/api/v1/clients/{shop.pk}/statement/").status_code == 400
    assert shop_api.get(f"/api/v1/clients/{shop.pk}/statement/", {**range_, "end": range_["start"]}).status_code == 400
