"""Locking helpers (reliability rule 2)."""

import zlib

from django.db import connection


def try_advisory_xact_lock(name: str) -> bool:
    """Take a PostgreSQL transaction-scoped advisory lock named `name`; False if another
    transaction holds it. Must run inside a transaction; released at commit or rollback.
    """
    key = zlib.crc32(name.encode())  # stable across processes, unlike hash()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [key])
        return bool(cursor.fetchone()[0])
