"""A client's external id holds no whitespace, control or invisible character, quote or `|`: the
admin's forms refuse one with a clear error and write nothing, a requested change of it is refused,
and the database refuses a row written any other way. The model's validator and the database's
CHECK constraint are one rule: they agree on every character there is."""

import sys
import unicodedata
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils.html import escape

from payments.external_ids import FORBIDDEN_CHARACTER_CLASS, validate_external_id
from payments.models import Client
from pgp_project.operations.models import PendingChange
from pgp_project.operations.pending_changes import request_change
from standins.demo import DEMO_CLIENTS
from standins.management.commands.benchmark_pipeline import CLIENT_ID as PIPELINE_CLIENT_ID

from ..conftest import PROJECT_ROOT
from ..factories import ClientFactory, StaffUserFactory

pytestmark = pytest.mark.django_db

WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
# Inside the id: a form strips whitespace around a value, which leaves a valid id.
REFUSED = {
    "space": "-100 777",
    "tab": "-100\t777",
    "line feed": "-100\n777",
    "carriage return": "-100\r777",
    "bell": "-100\x07777",
    "delete": "-100\x7f777",
    "no-break space": "-100\xa0777",
    "ideographic space": "-100\u3000777",
    "zero-width space": "-100\u200b777",
    "right-to-left override": "-100\u202e777",
    "byte order mark": "-100\ufeff777",
    "single quote": "-100'777",
    "double quote": '-100"777',
    "backtick": "-100`777",
    "pipe": "-100|777",
}
ACCEPTED = ["-1001234567890", "channel_42", "acme.shop-7", "a=b+c@d", "канал-1", "店铺42"]
BENCHMARK_CLIENT_ID = "-100bench"  # benchmarks/ipn_load.py's (a script, not a module)


def add_form(external_id: str) -> dict[str, str]:
    return {
        "external_id": external_id,
        "name": "New channel",
        "payout_strategy": "threshold",
        "payout_threshold_usd": "30.00",
        "payout_currency": "usdt",
        "payout_network": "eth",
        "wallet_address": WALLET,
        "is_active": "on",
    }


def test_the_admin_add_form_refuses_a_bad_id_with_a_clear_error_and_writes_nothing() -> None:
    http = HttpClient()
    http.force_login(StaffUserFactory(username="onboarder"))
    url = reverse("admin:payments_client_add")
    for what, external_id in REFUSED.items():
        response = http.post(url, add_form(external_id))
        assert response.status_code == 200, what
        page = response.content.decode()
        assert escape("An external id cannot contain whitespace, control or invisible characters") in page, what
        assert f"Found U+{ord(external_id[4]):04X}" in page, what  # which character, where
        assert not Client.objects.exists(), what
    assert http.post(url, add_form("-100777")).status_code == 302
    assert Client.objects.filter(external_id="-100777").exists()


def test_a_requested_change_to_a_bad_id_is_refused() -> None:
    client = ClientFactory.create(external_id="-100778")
    requester = StaffUserFactory(username="requester")
    for what, external_id in REFUSED.items():
        with pytest.raises(ValidationError, match="An external id cannot contain") as refused:
            request_change(Client, client.pk, {"external_id": external_id}, user=requester)
        assert "external_id" in refused.value.message_dict, what
    assert not PendingChange.objects.exists()
    assert Client.objects.get(pk=client.pk).external_id == "-100778"


def test_the_database_refuses_a_bad_id_written_without_the_form() -> None:
    client = ClientFactory.create(external_id="-100779")
    for what, external_id in REFUSED.items():
        with pytest.raises(IntegrityError, match="client_external_id_format"), transaction.atomic():
            Client.objects.filter(pk=client.pk).update(external_id=external_id)
        with pytest.raises(IntegrityError, match="client_external_id_format"), transaction.atomic():
            ClientFactory.create(external_id=external_id)
        assert Client.objects.get(pk=client.pk).external_id == "-100779", what
    for external_id in ACCEPTED:
        validate_external_id(external_id)
        Client.objects.filter(pk=client.pk).update(external_id=external_id)
        ClientFactory.create(external_id=external_id + "-new", payout_threshold_usd=Decimal("10.00"))


def test_the_validator_and_the_constraint_agree_on_every_character_and_refuse_every_invisible_one() -> None:
    by_python = set()
    for code in range(1, sys.maxunicode + 1):
        if not 0xD800 <= code <= 0xDFFF:  # surrogates are no characters
            try:
                validate_external_id(chr(code))
            except ValidationError:
                by_python.add(code)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT code FROM generate_series(1, %s) AS code WHERE code NOT BETWEEN 55296 AND 57343 AND chr(code) ~ %s",
            [sys.maxunicode, FORBIDDEN_CHARACTER_CLASS],
        )
        by_database = {code for (code,) in cursor.fetchall()}
    assert by_python == by_database
    invisible = {
        code
        for code in range(1, sys.maxunicode + 1)
        if chr(code).isspace() or unicodedata.category(chr(code)) in ("Cc", "Cf")
    }
    assert invisible - by_database == set()
    assert {ord(c) for c in "'\"`|"} <= by_database
    # Nothing else: no letter, digit, sign or symbol a real id might use.
    assert {unicodedata.category(chr(code)) for code in by_database - {ord(c) for c in "'\"`|"}} <= {
        "Cc",
        "Cf",
        "Zs",
        "Zl",
        "Zp",
        "Cn",  # the unassigned code points among the format ranges
    }


def test_the_demo_s_the_benchmarks_and_the_test_factories_ids_are_valid() -> None:
    ids = [row[0] for row in DEMO_CLIENTS] + [PIPELINE_CLIENT_ID, BENCHMARK_CLIENT_ID]
    ids += [ClientFactory.build().external_id for _ in range(3)]
    for external_id in ids:
        validate_external_id(external_id)
    assert f'CLIENT_ID = "{BENCHMARK_CLIENT_ID}"' in (PROJECT_ROOT / "benchmarks" / "ipn_load.py").read_text()
