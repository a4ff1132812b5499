"""An IPN's event and its count by outcome (ipn_counters), written by one prepared statement: the
intake's locked path, an undocumented status and a refusal each record one event, and counting it
must cost them no round trip to PostgreSQL (a payment's first notification counts its event in its
own statement, first_notification.py). One statement is also one transaction: the event and its
count are written together or not at all, inside a caller's transaction or not."""

from functools import cache

from django.db import connection

from pgp_project.prepared_statements import execute_prepared

from .first_notification import insert_columns, insert_values
from .ipn_counters import count_upsert_sql
from .models import PaymentEvent

NEW_EVENT = "new_event"


def insert_counted_event(event: PaymentEvent) -> PaymentEvent:
    """Insert the unsaved `event` and add one to its outcome's count; the event gets its id."""
    with connection.cursor() as cursor:
        execute_prepared(cursor, _insert_sql(), [*insert_values(event), str(event.outcome)])
        row = cursor.fetchone()
    assert row is not None  # an INSERT ... VALUES returns its row
    event.pk = row[0]
    event._state.adding = False
    event._state.db = connection.alias
    return event


@cache
def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = insert_columns(PaymentEvent)
    return (
        f"WITH {NEW_EVENT} AS (INSERT INTO {quote(PaymentEvent._meta.db_table)} "  # noqa: S608 (names only)
        f"({', '.join(quote(column) for column, _ in columns)}) VALUES ({', '.join(cast for _, cast in columns)}) "
        f"RETURNING {quote('id')}), "
        f"new_count AS ({count_upsert_sql(for_each_row_of=NEW_EVENT)}) "
        f"SELECT {quote('id')} FROM {NEW_EVENT}"
    )
