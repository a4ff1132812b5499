"""The lean IPN path: how many SQL statements an IPN costs, and the lock timeout set once per
database connection, because every IPN pays for each one. Before: 11 statements for a first finished IPN to a threshold
client (12 with the lock timeout), 3 for a duplicate (4); then 5 with INSERT ... ON CONFLICT;
now 2 prepared statements. The payment's outbox event (payment.received) is one more INSERT in
the second one: still 2 statements, 4 INSERTs in the write instead of 3."""

from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from payments.models import Client, IpnOutcome, Payment, PaymentEvent, PayoutAccumulation
from pgp_project.outbox.models import OutboxEvent

from ..conftest import ipn_body, post_ipn

pytestmark = pytest.mark.django_db(transaction=True)
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


def statements_of(body: dict[str, Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = post_ipn(HttpClient(), body)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries if query["sql"] not in TRANSACTION_CONTROL]


def prepared_text(execute: str) -> str:
    """The statement an `EXECUTE name (...)` runs, as this connection prepared it."""
    name = execute.split()[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [name])
        row = cursor.fetchone()
    assert row is not None, f"{name} is not prepared on this connection"
    return str(row[0])


def test_a_first_finished_ipn_to_a_threshold_client_costs_two_statements(threshold_client: Client):
    # A connection of its own: an IPN test run earlier in this process prepared the statements
    # on the connection it left open, and they are prepared once per connection.
    connection.close()
    first = statements_of(ipn_body(payment_id=1))  # prepares the statements, once per connection
    assert [sql.split()[0] for sql in first if sql.startswith(("PREPARE", "EXECUTE"))] == [
        "PREPARE",
        "EXECUTE",
        "PREPARE",
        "EXECUTE",
    ]
    statements = statements_of(ipn_body(payment_id=2))
    assert len(statements) == 2, statements
    read_client, write = statements
    assert read_client.startswith("EXECUTE pgp_")
    assert write.startswith("EXECUTE pgp_")
    # The client, the runtime default fee and the reference price in one query.
    read_client_text = prepared_text(read_client)
    for table in ("payments_client", "operations_runtimesettings", "payments_referenceprice"):
        assert table in read_client_text
    # The payment, its accumulation row, the event, the event's count by outcome and the outbox
    # event in one statement (its own transaction).
    write_text = prepared_text(write)
    assert write_text.count("INSERT INTO") == 5
    assert 'INSERT INTO "payments_ipneventcount"' in write_text
    assert 'INSERT INTO "outbox_outboxevent"' in write_text
    assert 'INSERT INTO "payments_payment"' in write_text
    assert "ON CONFLICT" in write_text
    assert 'INSERT INTO "payout_accumulation"' in write_text
    assert 'INSERT INTO "payments_paymentevent"' in write_text
    payment = Payment.objects.get(provider_payment_id=2)
    assert payment.routing_status == "routed"
    assert payment.client == threshold_client
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1
    assert PaymentEvent.objects.filter(payment=payment, outcome=IpnOutcome.APPLIED).count() == 1
    event = OutboxEvent.objects.get(subject_type="payment", subject_id=payment.pk)
    assert (event.type, event.sequence, event.client_id) == ("payment.received", 1, threshold_client.pk)


def test_a_duplicate_writes_only_its_event_and_changes_nothing(threshold_client: Client):
    statements_of(ipn_body(payment_id=3))
    statements_of(ipn_body(payment_id=3))  # a first duplicate prepares the event's statement
    before = Payment.objects.values().get()
    statements = statements_of(ipn_body(payment_id=3))
    # The client read and the first-notification write (which finds the payment), the lock,
    # the event with its count by outcome (one prepared statement).
    assert len(statements) == 4, statements
    assert statements[1].startswith("EXECUTE pgp_")
    assert "FOR UPDATE" in statements[2]
    event_text = prepared_text(statements[3])
    assert 'INSERT INTO "payments_paymentevent"' in event_text
    assert 'INSERT INTO "payments_ipneventcount"' in event_text
    assert Payment.objects.values().get() == before
    assert PayoutAccumulation.objects.count() == 1
    assert PaymentEvent.objects.filter(outcome=IpnOutcome.DUPLICATE).count() == 2


def test_a_status_change_writes_only_what_changed_and_reads_the_client_once(threshold_client: Client):
    statements_of(ipn_body(payment_id=4, payment_status="confirming"))
    statements = statements_of(ipn_body(payment_id=4))
    updates = [sql for sql in statements if sql.startswith("UPDATE")]
    assert len(updates) == 1
    assert '"status" =' in updates[0]
    for unchanged in ("provider_payment_id", "created_at", "order_id", "price_amount"):
        assert f'"{unchanged}" =' not in updates[0]
    executed = [prepared_text(sql) for sql in statements if sql.startswith("EXECUTE")]
    assert sum("payments_client" in text for text in executed) == 1, executed
    payment = Payment.objects.get()
    assert payment.status == "finished"
    assert payment.routing_status == "routed"
    assert PayoutAccumulation.objects.filter(payment=payment).count() == 1


def test_the_lock_timeout_is_set_once_per_connection(threshold_client: Client):
    connection.close()
    first = statements_of(ipn_body(payment_id=5, payment_status="waiting"))
    assert first[0] == f"SET lock_timeout = '{settings.IPN_LOCK_TIMEOUT_MS}ms'"
    second = statements_of(ipn_body(payment_id=6, payment_status="waiting"))
    assert not [sql for sql in second if "lock_timeout" in sql]
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        timeout = settings.IPN_LOCK_TIMEOUT_MS
        assert cursor.fetchone()[0] == (f"{timeout // 1000}s" if timeout % 1000 == 0 else f"{timeout}ms")
    connection.close()  # a new connection sets it again
    third = statements_of(ipn_body(payment_id=7, payment_status="waiting"))
    assert third[0].startswith("SET lock_timeout")


def test_without_prepared_statements_the_same_write_is_sent_as_plain_sql(threshold_client: Client):
    # What a transaction-pooling pgbouncer needs: nothing that lives in the database session.
    with override_settings(PGP_PREPARED_STATEMENTS=False):
        statements = statements_of(ipn_body(payment_id=8))
    assert not [sql for sql in statements if sql.startswith(("PREPARE", "EXECUTE"))], statements
    write = statements[-1]
    assert write.startswith("WITH new_payment AS (INSERT INTO")
    assert 'INSERT INTO "payout_accumulation"' in write
    assert PayoutAccumulation.objects.filter(payment__provider_payment_id=8).count() == 1
