"""Server-side prepared statements for the few queries every IPN runs, parsed and planned once per connection.

psycopg2 sends each query as text, which PostgreSQL parses and plans every time: for the IPN's
first-notification write (three INSERTs in one statement) that was about a fifth of the
database's work per IPN. Here a statement is `PREPARE`d once per database connection (web threads
keep theirs: CONN_MAX_AGE) and `EXECUTE`d after, with the same parameters.

- The name is derived from the statement's text, so a changed statement (a new release, a new
  column) is prepared afresh under its own name.
- A `PREPARE` survives the rollback of the transaction it ran in, so what is recorded as prepared
  is on the connection whatever happens next; a new connection starts with nothing prepared.
- Prepared statements live in the database session: they need the session to stay ours, as it
  does with Django's persistent connections. Behind a transaction-pooling pgbouncer, turn
  PGP_PREPARED_STATEMENTS off (docs/deployment.md, "Database connections").
"""

import hashlib
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.utils import CursorWrapper


def execute_prepared(cursor: CursorWrapper, sql: str, params: Sequence[Any]) -> None:
    """Run `sql` (with `%s` placeholders, and no other `%`) with `params` as a prepared
    statement of the cursor's connection; as plain SQL with PGP_PREPARED_STATEMENTS off."""
    wrapper = cursor.db
    if not settings.PGP_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    name, numbered = _prepared_form(sql)
    prepared = _prepared_on(wrapper)
    placeholders = ", ".join(["%s"] * len(params))
    execute = f"EXECUTE {name} ({placeholders})" if params else f"EXECUTE {name}"
    try:
        if name not in prepared:
            cursor.execute(f"PREPARE {name} AS {numbered}")
            prepared.add(name)
        cursor.execute(execute, params)
    except DatabaseError as error:
        if getattr(error.__cause__, "pgcode", None) not in SESSION_OUT_OF_STEP:
            raise
        # The session and what we recorded disagree (a pooler that kept or reset the session, a
        # column whose type changed under a prepared plan): forget it, and where no transaction
        # was aborted by the error, prepare it afresh once.
        prepared.discard(name)
        if wrapper.in_atomic_block:
            raise
        if _is_prepared(cursor, name):
            cursor.execute(f"DEALLOCATE PREPARE {name}")
        cursor.execute(f"PREPARE {name} AS {numbered}")
        prepared.add(name)
        cursor.execute(execute, params)


# 42P05 the name is prepared already, 26000 it is not, 0A000 "cached plan must not change result
# type".
SESSION_OUT_OF_STEP = {"42P05", "26000", "0A000"}


def _is_prepared(cursor: CursorWrapper, name: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [name])
    return cursor.fetchone() is not None


_FORMS: dict[str, tuple[str, str]] = {}


def _prepared_form(sql: str) -> tuple[str, str]:
    """(statement name, the text with PostgreSQL's numbered parameters $1, $2, ...)."""
    form = _FORMS.get(sql)
    if form is None:
        if "%%" in sql or "%(" in sql:
            raise ValueError("only positional %s placeholders")
        pieces = sql.split("%s")
        numbered = pieces[0] + "".join(f"${number}{piece}" for number, piece in enumerate(pieces[1:], start=1))
        form = (f"pgp_{hashlib.sha256(sql.encode()).hexdigest()[:16]}", numbered)
        _FORMS[sql] = form
    return form


def _prepared_on(wrapper: Any) -> set[str]:
    """The names prepared on the wrapper's current driver connection. Keyed by that connection
    object: a reconnect (CONN_MAX_AGE, a failed health check) gets a new one, with nothing
    prepared."""
    driver_connection = wrapper.connection
    held = getattr(wrapper, "pgp_prepared_statements", None)
    if held is None or held[0] is not driver_connection:
        held = (driver_connection, set())
        wrapper.pgp_prepared_statements = held
    names: set[str] = held[1]
    return names
