"""A memo or destination tag (ChangeNOW's extraId) belongs to the payout destination: validated
per network, guarded like the wallet, carried onto each payout. Its end-to-end delivery to the
exchange is in test_client_payouts."""

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from integrations.addresses import extra_id_problem
from payments.models import Client
from pgp_project.operations.models import PendingChange

from ..factories import ClientFactory
from ..people import logged_in, staff
from .test_money_controls import client_form

pytestmark = pytest.mark.django_db

XRP_WALLET = "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh"


@pytest.mark.parametrize(
    ("network", "memo", "accepted"),
    [
        ("xrp", "", True),  # a personal wallet needs none
        ("xrp", "0", True),
        ("xrp", "4294967295", True),
        ("xrp", "4294967296", False),  # a destination tag is a 32-bit unsigned number
        ("xrp", "00123", False),
        ("xrp", "12a", False),
        ("xrp", " 123", False),
        ("xlm", "invoice-77", True),
        ("xlm", "x" * 29, False),
        ("ton", "has space", False),
        ("eth", "123", False),  # an EVM transfer carries no memo
        ("trx", "1", False),
    ],
)
def test_memo_rules_per_network(network: str, memo: str, accepted: bool) -> None:
    assert (extra_id_problem(memo, network) is None) is accepted


def test_a_memo_change_is_a_guarded_destination_change_and_bad_ones_are_refused() -> None:
    client = ClientFactory.create(
        external_id="-100931", payout_currency="xrp", payout_network="xrp", wallet_address=XRP_WALLET
    )
    requester = staff(
        "requester", "payments.view_client", "payments.change_client", "payments.change_payout_destination"
    )
    http: HttpClient = logged_in(requester)
    url = reverse("admin:payments_client_change", args=[client.pk])

    page = http.post(url, client_form(client, payout_extra_id="not-a-tag"))
    assert page.status_code == 200
    assert b"is not a valid destination tag for xrp" in page.content
    assert not PendingChange.objects.exists()

    assert http.post(url, client_form(client, payout_extra_id="105791")).status_code == 302
    assert Client.objects.get(pk=client.pk).payout_extra_id == ""  # until a second person confirms
    change = PendingChange.objects.get()
    assert change.changes == {"payout_extra_id": {"old": "", "new": "105791"}}
