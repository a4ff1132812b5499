"""Rows by status, exact and read in constant time, for tables far too large to count at every
/metrics scrape (200k payouts, their host payments).

Each counted table has statement-level triggers (after INSERT, UPDATE and DELETE) that
record, from the statement's transition tables, what the statement changed per status (rows and
their `attempts`) as new rows of StatusCountChange, in the writer's own transaction: exact
whatever writes (the ORM, a bulk UPDATE, a seed's COPY), and never an UPDATE of a shared row, so
two writers never wait on each other nor deadlock over a count. A periodic job folds the changes
into StatusCount; a read sums both, so it is exact between folds too. A TRUNCATE of the table
empties its counts. The kernel knows no table:
an app's migration installs the triggers on its own tables (`install_sql`).
"""

import re
from dataclasses import dataclass

from django.db import connection, transaction

from .locks import try_advisory_xact_lock
from .models import StatusCount, StatusCountChange

FOLD_STATUS_COUNTS_TASK = "operations.fold_status_counts"
_FOLD_LOCK = "status counts fold"

COUNTS = StatusCount._meta.db_table
CHANGES = StatusCountChange._meta.db_table

# The one trigger function every counted table shares. An UPDATE records only the statuses whose
# rows or attempts changed: a save that moves nothing records nothing.
FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION pgp_record_status_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM {COUNTS} WHERE table_name = TG_TABLE_NAME;
    DELETE FROM {CHANGES} WHERE table_name = TG_TABLE_NAME;
  ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO {CHANGES} (table_name, status, rows, attempts)
    SELECT TG_TABLE_NAME, status, count(*), coalesce(sum(attempts), 0) FROM pgp_new_rows GROUP BY status;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO {CHANGES} (table_name, status, rows, attempts)
    SELECT TG_TABLE_NAME, status, -count(*), -coalesce(sum(attempts), 0) FROM pgp_old_rows GROUP BY status;
  ELSE
    INSERT INTO {CHANGES} (table_name, status, rows, attempts)
    SELECT TG_TABLE_NAME, status, sum(r), sum(a) FROM (
      SELECT status, 1 AS r, attempts AS a FROM pgp_new_rows
      UNION ALL SELECT status, -1, -attempts FROM pgp_old_rows
    ) moved GROUP BY status HAVING sum(r) <> 0 OR sum(a) <> 0;
  END IF;
  RETURN NULL;
END $$;
"""  # noqa: S608 (model table names only)


def install_sql(table: str) -> list[str]:
    """The triggers that keep `table`'s counts, and its counts as they stand: for the migration
    of the app that owns the table (one transaction: CREATE TRIGGER locks out writers until the
    counts are taken and the migration commits)."""
    _check_identifier(table)
    return [
        *(
            f"CREATE TRIGGER pgp_status_counts_{op.lower()} AFTER {op} ON {table} "
            f"REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION pgp_record_status_counts()"
            for op, refs in (
                ("INSERT", "NEW TABLE AS pgp_new_rows"),
                ("UPDATE", "OLD TABLE AS pgp_old_rows NEW TABLE AS pgp_new_rows"),
                ("DELETE", "OLD TABLE AS pgp_old_rows"),
            )
        ),
        # A TRUNCATE (a test's flush, a wiped benchmark database) empties the counts with the table.
        f"CREATE TRIGGER pgp_status_counts_truncate AFTER TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION pgp_record_status_counts()",
        # ALWAYS: they fire in a session that sets session_replication_role = replica too (a bulk
        # load with its foreign-key triggers off, as seed_scale does), where plain ones would not.
        *(
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER pgp_status_counts_{op}"
            for op in ("insert", "update", "delete", "truncate")
        ),
        f"INSERT INTO {COUNTS} (table_name, status, rows, attempts) "  # noqa: S608 (an identifier, checked)
        f"SELECT '{table}', status, count(*), coalesce(sum(attempts), 0) FROM {table} GROUP BY status",
    ]


def uninstall_sql(table: str) -> list[str]:
    _check_identifier(table)
    return [
        *(
            f"DROP TRIGGER IF EXISTS pgp_status_counts_{op} ON {table}"
            for op in ("insert", "update", "delete", "truncate")
        ),
        f"DELETE FROM {COUNTS} WHERE table_name = '{table}'",  # noqa: S608 (an identifier, checked)
        f"DELETE FROM {CHANGES} WHERE table_name = '{table}'",  # noqa: S608 (an identifier, checked)
    ]


def _check_identifier(table: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", table):
        raise ValueError(f"not a plain table name: {table!r}")


@dataclass(frozen=True)
class Counted:
    rows: int
    attempts: int


def status_counts(table: str) -> dict[str, Counted]:
    """Rows and attempts by status, exact: the folded totals plus the changes not folded yet,
    in one statement (one snapshot, so a fold in between cannot count a change twice)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, sum(rows), sum(attempts) FROM ("  # noqa: S608 (model tables only)
            f"SELECT status, rows, attempts FROM {COUNTS} WHERE table_name = %s "
            f"UNION ALL SELECT status, rows, attempts FROM {CHANGES} WHERE table_name = %s"
            ") counted GROUP BY status",
            [table, table],
        )
        return {status: Counted(int(rows), int(attempts)) for status, rows, attempts in cursor.fetchall()}


def fold_status_counts() -> int:
    """Add the recorded changes to the totals and delete them, in one statement; returns how many
    were folded. A concurrent fold does nothing (advisory lock); a writer is never waited on."""
    with transaction.atomic():
        if not try_advisory_xact_lock(_FOLD_LOCK):
            return 0
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH folded AS (DELETE FROM {CHANGES} RETURNING table_name, status, rows, attempts), "  # noqa: S608
                "summed AS (SELECT table_name, status, sum(rows) AS rows, sum(attempts) AS attempts, count(*) AS n "
                "FROM folded GROUP BY table_name, status), "
                f"applied AS (INSERT INTO {COUNTS} (table_name, status, rows, attempts) "
                "SELECT table_name, status, rows, attempts FROM summed "
                f"ON CONFLICT (table_name, status) DO UPDATE SET rows = {COUNTS}.rows + excluded.rows, "
                f"attempts = {COUNTS}.attempts + excluded.attempts) "
                "SELECT coalesce(sum(n), 0) FROM summed"
            )
            row = cursor.fetchone()
    return int(row[0]) if row else 0
