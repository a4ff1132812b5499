"""Counters of IPNs by outcome that only ever grow (`IpnEventCount`), for /metrics.

Counting the stored events instead would be a full scan of the largest table at every scrape, and
its count of refused IPNs falls when the retention job prunes them: a counter must never fall.
So each event is counted where it is recorded, in the same statement or transaction, and the
count survives the event. An outcome's count is spread over SHARDS rows chosen by the database
connection's backend pid: a connection serves one request at a time, so two concurrent intakes
collide on a row only when their pids fall on the same shard, and then for one statement."""

from django.db import connection
from django.db.models import Sum

from .models import IpnEventCount, IpnOutcome, PaymentEvent

SHARDS = 16

# `mod()` rather than the `%` operator in the SQL below: the first notification's statement is
# prepared, where `%` is the placeholder's character.
_TABLE = IpnEventCount._meta.db_table


def count_upsert_sql(*, for_each_row_of: str = "") -> str:
    """INSERT ... ON CONFLICT DO UPDATE adding one to the count of the outcome given as its one
    `%s` parameter, on this connection's shard. With `for_each_row_of` (a CTE's name) it adds one
    per row that CTE returned, none when it returned none: a data-modifying CTE of a statement
    that may write nothing."""
    quote = connection.ops.quote_name
    table = quote(_TABLE)
    values = f"%s::varchar, mod(pg_backend_pid(), {SHARDS}), 1"
    rows = f"SELECT {values} FROM {for_each_row_of}" if for_each_row_of else f"VALUES ({values})"  # noqa: S608 (names)
    total = quote("total")
    return (
        f"INSERT INTO {table} ({quote('outcome')}, {quote('shard')}, {total}) {rows} "
        f"ON CONFLICT ({quote('outcome')}, {quote('shard')}) DO UPDATE SET {total} = {table}.{total} + 1"
    )


def count_ipn_event(outcome: str) -> None:
    """Add one to `outcome`'s count. Call it in the transaction that records the event, so the
    two commit or roll back together."""
    with connection.cursor() as cursor:
        cursor.execute(count_upsert_sql(), [outcome])


def ipn_event_totals() -> dict[str, int]:
    """IPNs recorded by outcome, ever (0 for an outcome never seen): one aggregate over at most
    SHARDS rows per outcome."""
    totals = dict.fromkeys(IpnOutcome.values, 0)
    for outcome, total in (
        IpnEventCount.objects.values_list("outcome").annotate(n=Sum("total")).values_list("outcome", "n")
    ):
        totals[outcome] = int(total)
    return totals


def count_stored_ipn_events() -> None:
    """Set the counters from the events stored, for a database filled without the intake (a
    migration of an existing one, a bulk seed): only right while nothing was pruned yet, since
    pruned events are no longer there to count. Replaces whatever the counters held."""
    table = connection.ops.quote_name(_TABLE)
    events = connection.ops.quote_name(PaymentEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (name only)
        cursor.execute(
            f"INSERT INTO {table} (outcome, shard, total) "  # noqa: S608 (names only)
            f"SELECT outcome, 0, count(*) FROM {events} GROUP BY outcome"
        )
