"""A payment's first notification written in one SQL statement, the IPN path's hottest write.

The payment, its accumulation row (when routing made one), the IPN's event, its count by outcome
(`ipn_counters`) and the payment's first outbox event (when there is one: received or held) are inserted by one
`INSERT ... ON CONFLICT DO NOTHING RETURNING` with the dependent rows in data-modifying CTEs that
read the new payment's id. Outside a transaction the statement is its own: one round trip to
PostgreSQL instead of a BEGIN, five statements and a COMMIT. It is prepared once per connection
(pgp_project/prepared_statements.py). When the payment exists already
(or a concurrent first notification of it is being written: PostgreSQL makes our INSERT wait for
that one's outcome), the statement writes nothing at all and the caller takes the locked path.

The values are Django's own (`pre_save`, `get_db_prep_save`: auto_now stamps, JSON adaptation),
so a row written here is the row `Model.save()` would have written.
"""

import re
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import connection, models
from django.db.models import Field, Model

from pgp_project.outbox.events import OUTBOX_FIRST_EVENT_CASTS, OUTBOX_FIRST_EVENT_COLUMNS, first_event_values
from pgp_project.outbox.models import OutboxEvent
from pgp_project.prepared_statements import execute_prepared

from .ipn_counters import count_upsert_sql
from .models import Payment, PaymentEvent, PayoutAccumulation

NEW_PAYMENT = "new_payment"


def write_first_notification(
    payment: Payment,
    accumulation: PayoutAccumulation | None,
    event: PaymentEvent,
    outbox: tuple[str, dict[str, Any]] | None = None,
) -> bool:
    """Insert the unsaved payment with its accumulation row (or none), the event, and the outbox
    event `outbox` (type, payload) or none; True when written (the payment then has its id),
    False when the payment exists and nothing was written."""
    sql = _write_sql(with_accumulation=accumulation is not None, with_outbox=outbox is not None)
    params = insert_values(payment)
    if accumulation is not None:
        params += insert_values(accumulation, without="payment_id")
    params += insert_values(event, without="payment_id")
    if outbox is not None:
        # The payment is new: its first event is its sequence 1, no race possible.
        params += first_event_values(outbox[0], "payment", payment.client_id, outbox[1])
    params.append(str(event.outcome))  # its count, in the same statement
    with connection.cursor() as cursor:
        execute_prepared(cursor, sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    payment.pk = row[0]
    payment._state.adding = False
    payment._state.db = connection.alias
    return True


@cache
def _write_sql(*, with_accumulation: bool, with_outbox: bool = False) -> str:
    quote = connection.ops.quote_name
    payment_columns = insert_columns(Payment)
    parts = [
        f"WITH {NEW_PAYMENT} AS ("  # noqa: S608 (model and column names only, quoted)
        f"INSERT INTO {quote(Payment._meta.db_table)} ({', '.join(quote(c) for c, _ in payment_columns)}) "
        f"VALUES ({', '.join(cast for _, cast in payment_columns)}) "
        f"ON CONFLICT ({quote('provider_payment_id')}) DO NOTHING RETURNING {quote('id')})"
    ]
    if with_accumulation:
        parts.append(f"new_accumulation AS ({_dependent_insert(PayoutAccumulation)})")
    parts.append(f"new_event AS ({_dependent_insert(PaymentEvent)})")
    if with_outbox:
        columns = ", ".join(quote(column) for column in OUTBOX_FIRST_EVENT_COLUMNS)
        casts = ", ".join(f"%s::{cast}" for cast in OUTBOX_FIRST_EVENT_CASTS)
        parts.append(
            f"new_outbox AS (INSERT INTO {quote(OutboxEvent._meta.db_table)} ({quote('subject_id')}, {columns}) "  # noqa: S608 (names)
            f"SELECT {NEW_PAYMENT}.{quote('id')}, {casts} FROM {NEW_PAYMENT})"
        )
    # The event's count (ipn_counters): one more row upserted, no more round trip.
    parts.append(f"new_count AS ({count_upsert_sql(for_each_row_of=NEW_PAYMENT)})")
    return ", ".join(parts) + f" SELECT {quote('id')} FROM {NEW_PAYMENT}"  # noqa: S608 (model names only)


def _dependent_insert(model: type[Model]) -> str:
    """A row that belongs to the new payment: inserted once per row NEW_PAYMENT returns, i.e.
    not at all when the payment existed."""
    quote = connection.ops.quote_name
    columns = insert_columns(model, without="payment_id")
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({quote('payment_id')}, {', '.join(quote(c) for c, _ in columns)}) "  # noqa: S608 (names)
        f"SELECT {NEW_PAYMENT}.{quote('id')}, {', '.join(cast for _, cast in columns)} FROM {NEW_PAYMENT}"
    )


def insert_columns(model: type[Model], without: str = "") -> list[tuple[str, str]]:
    """(column, typed placeholder) of the fields an INSERT writes. Typed: in `INSERT ... SELECT`
    PostgreSQL would otherwise take the parameters as text, which it does not assign to numbers.
    The type without its length or precision (`varchar`, not `varchar(128)`): a cast would cut an
    over-long string silently, where the column itself refuses it, as it does for save()."""
    return [
        (field.column, f"%s::{_TYPE_MODIFIERS.sub('', field.cast_db_type(connection))}")
        for field in _insert_fields(model, without)
    ]


_TYPE_MODIFIERS = re.compile(r"\(.*?\)")


def insert_values(instance: Model, without: str = "") -> list[Any]:
    return [_database_value(field, instance) for field in _insert_fields(type(instance), without)]


# Fields whose database value is the Python value itself when it is None or of exactly this type:
# Django's get_db_prep_save would only check it and return it. Skipping that machinery for
# these halved the cost of preparing the three rows; every other field goes through Django.
_STORED_AS_IS: dict[type[Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.BigIntegerField: int,
    models.PositiveIntegerField: int,
    models.BooleanField: bool,
    models.ForeignKey: int,
    models.OneToOneField: int,
    models.DecimalField: Decimal,  # finite ones: Django passes them to the driver unchanged too
}


def _database_value(field: Any, instance: Model) -> Any:
    value = field.pre_save(instance, True)
    kind = _STORED_AS_IS.get(type(field))
    stored_as_is = kind is not None and (value is None or type(value) is kind)
    if stored_as_is and (not isinstance(value, Decimal) or value.is_finite()):
        return value
    return field.get_db_prep_save(value, connection)


@cache
def _insert_fields(model: type[Model], without: str) -> list[Any]:
    return [field for field in model._meta.concrete_fields if not field.primary_key and field.attname != without]
