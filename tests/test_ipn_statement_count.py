"""The lean IPN path: how many SQL statements an IPN costs, and the lock timeout set once per
database connection (issue #11). Before: 11 statements for a first finished IPN to a threshold
client (12 with the lock timeout), 3 for a duplicate (4)."""

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext

from payments.models import Client, IpnOutcome, Payment, PaymentEvent, PayoutAccumulation

from .conftest import ipn_body, post_ipn

pytestmark = pytest.mark.django_db(transaction=True)
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


def statements_of(body: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = post_ipn(HttpClient(), body)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries if query["sql"] not in TRANSACTION_CONTROL]


def test_a_first_finished_ipn_to_a_threshold_client_costs_five_statements(threshold_client: Client):
    statements_of(ipn_body(payment_id=1))  # the connection's lock timeout, set once
    statements = statements_of(ipn_body(payment_id=2))
    assert len(statements) == 5, statements
    insert, read_client, insert_row, update_payment, insert_event = statements
    assert insert.startswith('INSERT INTO "payments_payment"')
    assert "ON CONFLICT" in insert
    # The client, the runtime default fee and the reference price in one query.
    assert "payments_client" in read_client
    assert "operations_runtimesettings" in read_client
    assert "payments_referenceprice" in read_client
    assert insert_row.startswith('INSERT INTO "payout_accumulation"')
    # Only what routing changed is written.
    assert update_payment.startswith('UPDATE "payments_payment" SET "client_id"')
    assert '"raw_payload"' not in update_payment
    assert insert_event.startswith('INSERT INTO "payments_paymentevent"')
    assert PayoutAccumulation.objects.filter(payment__provider_payment_id=2).count() == 1


def test_a_duplicate_costs_three_statements_and_changes_nothing(threshold_client: Client):
    statements_of(ipn_body(payment_id=3))
    before = Payment.objects.values().get()
    statements = statements_of(ipn_body(payment_id=3))
    assert len(statements) == 3, statements
    assert "ON CONFLICT" in statements[0]
    assert "FOR UPDATE" in statements[1]
    assert Payment.objects.values().get() == before
    assert PaymentEvent.objects.filter(outcome=IpnOutcome.DUPLICATE).count() == 1


def test_a_status_change_writes_only_what_changed(threshold_client: Client):
    statements_of(ipn_body(payment_id=4, payment_status="confirming"))
    statements = statements_of(ipn_body(payment_id=4))
    updates = [sql for sql in statements if sql.startswith("UPDATE")]
    assert len(updates) == 1
    assert '"status" =' in updates[0]
    for unchanged in ("provider_payment_id", "created_at", "order_id", "price_amount"):
        assert f'"{unchanged}" =' not in updates[0]
    payment = Payment.objects.get()
    assert payment.status == "finished"
    assert payment.routing_status == "routed"


def test_the_lock_timeout_is_set_once_per_connection(threshold_client: Client):
    connection.close()
    first = statements_of(ipn_body(payment_id=5, payment_status="waiting"))
    assert first[0] == f"SET lock_timeout = '{settings.IPN_LOCK_TIMEOUT_MS}ms'"
    second = statements_of(ipn_body(payment_id=6, payment_status="waiting"))
    assert not [sql for sql in second if "lock_timeout" in sql]
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == f"{settings.IPN_LOCK_TIMEOUT_MS // 1000}s"
    connection.close()  # a new connection sets it again
    third = statements_of(ipn_body(payment_id=7, payment_status="waiting"))
    assert third[0].startswith("SET lock_timeout")
