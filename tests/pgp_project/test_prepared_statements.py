"""Prepared statements (pgp_project/prepared_statements.py) stay usable when the database session
and what the process recorded disagree: a pooler that kept or reset the session, a plan whose
result type changed."""

import pytest
from django.db import DatabaseError, connection, transaction

from pgp_project.prepared_statements import execute_prepared

pytestmark = pytest.mark.django_db(transaction=True)
SQL = "SELECT %s::int + 1"


def run_once() -> int:
    with connection.cursor() as cursor:
        execute_prepared(cursor, SQL, [41])
        return int(cursor.fetchone()[0])


def forget_what_was_prepared() -> None:
    connection.pgp_prepared_statements[1].clear()  # type: ignore[attr-defined]


def test_a_statement_the_session_already_holds_is_used(db: None) -> None:
    assert run_once() == 42
    forget_what_was_prepared()  # the process believes nothing is prepared; the session disagrees
    assert run_once() == 42


def test_a_session_that_was_reset_prepares_again(db: None) -> None:
    assert run_once() == 42
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    assert run_once() == 42


def test_in_a_transaction_the_error_is_raised_and_the_next_one_prepares_again(db: None) -> None:
    assert run_once() == 42
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with pytest.raises(DatabaseError), transaction.atomic():
        run_once()  # the transaction is aborted: no retry inside it
    assert run_once() == 42


def test_a_prepare_inside_a_rolled_back_transaction_stays_usable(db: None) -> None:
    connection.close()

    def prepare_then_roll_back() -> None:
        with transaction.atomic():
            assert run_once() == 42
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        prepare_then_roll_back()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 1
    assert run_once() == 42
