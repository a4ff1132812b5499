"""record_event: the one way an event enters the outbox.

    record_event("payout.completed", ("payout", batch.pk), {"amount": "12.500000"}, client_id=...)

It must be called inside the transaction of the change it reports (it refuses to run outside
one), so the event commits or rolls back with that change. The event's per-subject sequence is
the subject's highest plus one, computed and inserted in one statement; two transactions that
race for the same number meet on the unique constraint: the loser's INSERT waits for the winner
to commit, writes nothing (ON CONFLICT DO NOTHING, no savepoint needed) and is repeated, now
seeing the winner's row. Listeners (the webhooks app) are told after commit.
"""

import json
import secrets
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .models import OutboxEvent

Subject = tuple[str, int]
_LISTENERS: list[Callable[[int], None]] = []
_MAX_SEQUENCE_RACES = 20


class OutsideTransaction(RuntimeError):
    """record_event was called with no transaction open: the event could outlive its change."""


def new_event_id() -> str:
    """evt_ + 32 hex digits: the time in milliseconds, then 80 random bits. Time first, so the
    unique index takes new ids at its right edge instead of at random pages (a cheaper INSERT)."""
    return f"evt_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def register_listener(listener: Callable[[int], None]) -> None:
    """Called from an app's ready(): `listener(event_pk)` runs after each event's transaction
    commits (and never for one rolled back). It must not raise: the change is committed."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def json_payload(payload: Mapping[str, Any]) -> str:
    """The payload as stored: Decimal as its exact string, datetimes as ISO 8601."""
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":"))


def record_event(type: str, subject: Subject, payload: Mapping[str, Any], client_id: int | None = None) -> int:
    """Write an event in the current transaction; returns its row id."""
    if not connection.in_atomic_block:
        raise OutsideTransaction(f"{type}: record_event must run in the transaction of the change it reports")
    for value in payload.values():
        if isinstance(value, float):
            raise TypeError(f"{type}: a float in an event payload; money is a Decimal")
    subject_type, subject_id = subject
    params: list[Any] = [
        new_event_id(),
        type,
        subject_type,
        subject_id,
        client_id,
        json_payload(payload),
        timezone.now(),
    ]
    with connection.cursor() as cursor:
        for _ in range(_MAX_SEQUENCE_RACES):
            cursor.execute(_insert_sql(), [*params, subject_type, subject_id])
            row = cursor.fetchone()
            if row is not None:
                break
        else:
            raise RuntimeError(f"{type}: no sequence number for {subject_type} #{subject_id} after many races")
    pk = int(row[0])
    if _LISTENERS:
        transaction.on_commit(lambda: _tell_listeners(pk))
    return pk


def _tell_listeners(pk: int) -> None:
    for listener in _LISTENERS:
        listener(pk)


@cache
def _insert_sql() -> str:
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    return (
        f"INSERT INTO {table} (event_id, type, subject_type, subject_id, client_id, payload, created_at, sequence) "  # noqa: S608 (table name only)
        "SELECT %s, %s, %s, %s, %s, %s::jsonb, %s, COALESCE(MAX(sequence), 0) + 1 "
        f"FROM {table} WHERE subject_type = %s AND subject_id = %s "
        "ON CONFLICT (subject_type, subject_id, sequence) DO NOTHING RETURNING id"
    )


def first_event_values(type: str, subject_type: str, client_id: int | None, payload: Mapping[str, Any]) -> list[Any]:
    """The columns of a subject's first event (sequence 1), for a caller that inserts it in a
    statement of its own making (the IPN intake's one-statement write of a new payment): the
    subject is new, so no other event of it can exist. Order: OUTBOX_FIRST_EVENT_COLUMNS."""
    return [new_event_id(), type, subject_type, 1, client_id, json_payload(payload), timezone.now()]


# Without subject_id: the caller's statement supplies the new subject's id.
OUTBOX_FIRST_EVENT_COLUMNS = ("event_id", "type", "subject_type", "sequence", "client_id", "payload", "created_at")
OUTBOX_FIRST_EVENT_CASTS = ("varchar", "varchar", "varchar", "integer", "bigint", "jsonb", "timestamptz")


def money(value: Decimal | None) -> str | None:
    """A money amount for a payload: its exact decimal string."""
    return None if value is None else str(value)
