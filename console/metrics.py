"""Prometheus metrics at /metrics, for operators only (a staff session the admin would let in, or
`Authorization: Bearer $PGP_METRICS_TOKEN`; anyone else gets 403).

A custom collector reads the database at scrape time, so every web process answers the same and
no multiprocess state is kept. Events are counters kept in rows only ever incremented, never
pruned: `pgp_ipn_events_total` (payments.ipn_counters: counted as each IPN is recorded, so the
retention job's pruning of refused ones lowers nothing), `pgp_alerts_total` and
`pgp_webhook_attempts_total`. Everything else is a gauge of what the database records now. No
family scans a large table: the IPN counts are a few counter rows, and the others read the
batch and host-payment tables (each far smaller than the payments and IPN events) or small
ones (the hot-wallet snapshot, Beat's periodic tasks). The alerting rules in
deploy/prometheus/alerts.yml and the dashboard in deploy/grafana/ are written against these names.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Min, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from batching.models import BatchConversion
from integrations.exchange.registry import configured_providers
from payments.ipn_counters import ipn_event_totals
from payments.models import Payment, RoutingStatus
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch
from pgp_project.admin_site import operator_access_allowed
from pgp_project.operations.alerts import alert_counts
from pgp_project.operations.attention import attention_deadline_seconds, attention_tally
from pgp_project.operations.circuit_breaker import BreakerState, CallOutcome, breaker_state, service_health
from pgp_project.operations.status_counts import status_counts
from webhooks.services import delivery_counters, outbox_lag_seconds

from .metrics_operations import hot_wallet_families, periodic_task_families
from .models import ReconciliationRun

BATCH_MODELS = {"conversion": BatchConversion, "payout": PayoutBatch}
CLOSED_BATCH = [BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.MERGED]
REVIEW_BATCH = [BatchStatus.FAILED, BatchStatus.REFUNDED]
OPEN_HOST_PAYMENT = [HostPaymentStatus.CREATED, HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST]


def exchange_provider_metrics() -> Iterator[Metric]:
    """Per configured exchange provider (enabled or not, called or not): its calls by outcome and
    their time (counters, from pgp_project.operations.circuit_breaker), and whether routing skips
    it now (its circuit breaker is open)."""
    names = configured_providers()
    health = service_health(names)
    calls = CounterMetricFamily(
        "pgp_exchange_provider_calls", "Calls to each exchange provider, by outcome", labels=["provider", "outcome"]
    )
    seconds = SummaryMetricFamily(
        "pgp_exchange_provider_call_seconds", "Time spent in calls to each exchange provider", labels=["provider"]
    )
    circuit = GaugeMetricFamily(
        "pgp_exchange_provider_circuit_open",
        "1 while routing skips the provider (its circuit breaker is open), else 0",
        labels=["provider"],
    )
    cooldown = settings.PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS
    for name in names:
        row = health[name]
        counts = {outcome: getattr(row, f"calls_{outcome.value}") for outcome in CallOutcome}
        for outcome, count in counts.items():
            calls.add_metric([name, outcome.value], count)
        seconds.add_metric([name], count_value=sum(counts.values()), sum_value=row.call_seconds)
        circuit.add_metric([name], 1 if breaker_state(name, cooldown=cooldown) == BreakerState.OPEN else 0)
    yield from (calls, seconds, circuit)


class ConsoleCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._ipn_events()
        yield from self._batches_and_items(now)
        yield from self._attention(now)
        yield from self._alerts_and_webhooks()
        yield from self._reconciliation()
        yield from hot_wallet_families()
        yield from periodic_task_families()
        yield from exchange_provider_metrics()

    @staticmethod
    def _ipn_events() -> Iterator[Metric]:
        # A true counter (payments.ipn_counters): what the retention job prunes stays counted.
        ipn = CounterMetricFamily(
            "pgp_ipn_events", "IPNs received and recorded, by what was done with them", labels=["outcome"]
        )
        for outcome, count in ipn_event_totals().items():
            ipn.add_metric([outcome], count)
        yield ipn

    def _batches_and_items(self, now: datetime) -> Iterator[Metric]:
        batches = GaugeMetricFamily("pgp_batches", "Conversions and payouts by state", labels=["kind", "status"])
        attempts = GaugeMetricFamily(
            "pgp_step_attempts",
            "Retries and give-ups recorded on items (their `attempts`), open and closed",
            labels=["kind"],
        )
        failing = GaugeMetricFamily(
            "pgp_open_items_with_error", "Open items whose last step failed (a `last_error`)", labels=["kind"]
        )
        failed = GaugeMetricFamily("pgp_failed_items", "Items that failed and need review", labels=["kind"])
        oldest = GaugeMetricFamily(
            "pgp_oldest_open_item_age_seconds", "Age of the oldest item not yet closed (0: none open)", labels=["kind"]
        )
        for kind, model in BATCH_MODELS.items():
            by_status = self._items(kind, model, ~Q(status__in=CLOSED_BATCH), now, attempts, failing, oldest)
            for status in BatchStatus.values:
                batches.add_metric([kind, status], by_status.get(status, 0))
            failed.add_metric([kind], sum(by_status.get(status, 0) for status in REVIEW_BATCH))
        yield batches

        host_payments = GaugeMetricFamily(
            "pgp_host_payments", "Host payments (hot-wallet sends) by state", labels=["status"]
        )
        by_status = self._items(
            "host_payment", HostPayment, Q(status__in=OPEN_HOST_PAYMENT), now, attempts, failing, oldest
        )
        for status in HostPaymentStatus.values:
            host_payments.add_metric([status], by_status.get(status, 0))
        yield host_payments
        failed.add_metric(["host_payment"], by_status.get(HostPaymentStatus.FAILED, 0))
        held = Payment.objects.filter(routing_status=RoutingStatus.HELD).aggregate(first=Min("created_at"))["first"]
        oldest.add_metric(["held_payment"], (now - held).total_seconds() if held else 0)
        yield from (attempts, failing, failed, oldest)

    @staticmethod
    def _attention(now: datetime) -> Iterator[Metric]:
        # The same counts as /health/'s needs_attention, with each kind's longest wait: one query
        # per source.
        tally = attention_tally()
        breakdown = {reason: count for reason, (count, _) in tally.items()}
        # Not `..._total`: a gauge of what waits now, not a counter (that suffix is a counter's).
        total = GaugeMetricFamily("pgp_needs_attention_items", "Items that need a person, all reasons together")
        total.add_metric([], sum(breakdown.values()))
        yield total
        reasons = GaugeMetricFamily("pgp_needs_attention", "Items that need a person, by reason", labels=["reason"])
        for reason, count in sorted(breakdown.items()):
            reasons.add_metric([reason], count)
        yield reasons
        ages = GaugeMetricFamily(
            "pgp_needs_attention_oldest_age_seconds",
            "How long the longest-waiting item of each reason has waited (0: none waits)",
            labels=["reason"],
        )
        for reason, (_, since) in sorted(tally.items()):
            ages.add_metric([reason], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield ages
        deadlines = GaugeMetricFamily(
            "pgp_needs_attention_deadline_seconds",
            "How long an item of each reason may wait for a person before it is overdue "
            "(PGP_ATTENTION_DEADLINE_SECONDS, PGP_ATTENTION_DEADLINES)",
            labels=["reason"],
        )
        for reason in sorted(breakdown):
            deadlines.add_metric([reason], attention_deadline_seconds(reason))
        yield deadlines

    @staticmethod
    def _alerts_and_webhooks() -> Iterator[Metric]:
        # A true counter (kept per alert name, incremented with each line, never pruned).
        alerts = CounterMetricFamily("pgp_alerts", "Alert lines written, by alert name", labels=["name"])
        for name, count in alert_counts().items():
            alerts.add_metric([name], count)
        yield alerts

        lag = GaugeMetricFamily(
            "pgp_outbox_lag_seconds", "Age of the oldest outbox event not yet delivered to every endpoint wanting it"
        )
        lag.add_metric([], outbox_lag_seconds())
        yield lag
        # True counters (a row per outcome, incremented with each attempt, never pruned).
        webhook_attempts = CounterMetricFamily(
            "pgp_webhook_attempts", "Webhook delivery attempts, by outcome", labels=["outcome"]
        )
        for outcome, count in delivery_counters().items():
            webhook_attempts.add_metric([outcome], count)
        yield webhook_attempts

    @staticmethod
    def _reconciliation() -> Iterator[Metric]:
        last = ReconciliationRun.objects.first()
        if last is not None:
            run = GaugeMetricFamily(
                "pgp_reconciliation_last_discrepancies", "Discrepancies found by the last reconciliation"
            )
            run.add_metric([], last.discrepancy_count)
            yield run
            ran = GaugeMetricFamily("pgp_reconciliation_last_run_timestamp_seconds", "When the last reconciliation ran")
            ran.add_metric([], last.ran_at.timestamp())
            yield ran

    @staticmethod
    def _items(
        kind: str,
        model: Any,
        open_items: Q,
        now: datetime,
        attempts: GaugeMetricFamily,
        failing: GaugeMetricFamily,
        oldest: GaugeMetricFamily,
    ) -> dict[str, int]:
        """Count by status, and add the kind's attempts, open items with an error and oldest open
        item to their families. The counts and attempts are the ones the table's triggers keep
        (status_counts: never a count of the table); the open items come from a partial index of
        the few not closed."""
        counted = status_counts(model._meta.db_table)
        attempts.add_metric([kind], sum(count.attempts for count in counted.values()))
        manager = model._default_manager
        failing.add_metric([kind], manager.filter(open_items).exclude(last_error="").count())
        first = manager.filter(open_items).aggregate(first=Min("created_at"))["first"]
        oldest.add_metric([kind], (now - first).total_seconds() if first else 0)
        return {status: count.rows for status, count in counted.items()}


def may_scrape(request: HttpRequest) -> bool:
    """The same rule as /health/'s details, with its own token (PGP_METRICS_TOKEN)."""
    return operator_access_allowed(request, settings.PGP_METRICS_TOKEN)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConsoleCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
