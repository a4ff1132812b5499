"""The /metrics families an operator's alerting rules need beyond the money's states: the hot
wallet's balances against their floors, per chain, and when each periodic job last ran. Both read
small tables; neither ever asks a chain node (the balances are the periodic refresh's last reading,
`HotWalletSnapshot`), so a node that is down cannot slow a scrape."""

from collections.abc import Iterator
from decimal import Decimal

from django_celery_beat.models import PeriodicTask
from prometheus_client.core import GaugeMetricFamily, Metric

from payouts.host_payments.ports import configured_chains

from .hot_wallet import low_balance_floors
from .models import HotWalletSnapshot

# django-celery-beat's interval periods, in seconds.
PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 1e-6}


def hot_wallet_families() -> Iterator[Metric]:
    balance = GaugeMetricFamily(
        "pgp_hot_wallet_balance",
        "The hot wallet's balance of an asset on a chain, as the periodic refresh last read it "
        "(for monitoring only: the console shows the exact amount)",
        labels=["chain", "asset"],
    )
    floor = GaugeMetricFamily(
        "pgp_hot_wallet_low_balance_floor",
        "The balance under which an asset on a chain is alerted (`low_balance` in its PGP_CHAINS entry)",
        labels=["chain", "asset"],
    )
    read_at = GaugeMetricFamily(
        "pgp_hot_wallet_read_timestamp_seconds",
        "When the periodic refresh last read a chain's hot-wallet balances successfully",
        labels=["chain"],
    )
    snapshots = {snapshot.chain: snapshot for snapshot in HotWalletSnapshot.objects.all()}
    for chain in configured_chains():
        for symbol, amount in sorted(low_balance_floors(chain).items()):
            floor.add_metric([chain, symbol], float(amount))
        snapshot = snapshots.get(chain)
        if snapshot is None or snapshot.fetched_at is None:
            continue  # not yet read: no value rather than a false zero
        read_at.add_metric([chain], snapshot.fetched_at.timestamp())
        for symbol, amount in sorted((snapshot.balances or {}).items()):
            balance.add_metric([chain, symbol], float(Decimal(amount)))
    yield from (balance, floor, read_at)


def periodic_task_families() -> Iterator[Metric]:
    """Each enabled periodic task's last run and, for an interval schedule (every default job's),
    its interval: a rule compares the two. A task that never ran reports when it was last
    scheduled or changed, as Beat itself counts from then."""
    last_run = GaugeMetricFamily(
        "pgp_periodic_task_last_run_timestamp_seconds",
        "When Beat last sent an enabled periodic task (never run: when it was last changed); Beat "
        "writes it back every few minutes",
        labels=["name", "task"],
    )
    interval = GaugeMetricFamily(
        "pgp_periodic_task_interval_seconds",
        "The interval of an enabled periodic task on an interval schedule",
        labels=["name", "task"],
    )
    tasks = PeriodicTask.objects.filter(enabled=True, one_off=False).select_related("interval").order_by("name")
    for task in tasks:
        labels = [task.name, task.task]
        moment = task.last_run_at or task.date_changed
        last_run.add_metric(labels, moment.timestamp())
        if task.interval is not None:
            interval.add_metric(labels, task.interval.every * PERIOD_SECONDS[task.interval.period])
    yield from (last_run, interval)
