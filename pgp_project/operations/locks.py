"""Locking helpers (reliability rule 2)."""

import zlib

from django.db import connection


def try_advisory_xact_lock(name: str) -> bool:
    """Take a PostgreSQL transaction-scoped advisory lock named `name`; False if another
    transaction holds it. Must run inside a transaction; released at commit or rollback.

    On SQLite (the embedded demo) there is no such lock: SQLite admits one writer at a time,
    and every claim is itself a compare-and-set, so a second run finds nothing left to claim.
    """
    if connection.vendor != "postgresql":
        return True
    key = zlib.crc32(name.encode())  # stable across processes, unlike hash()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])
