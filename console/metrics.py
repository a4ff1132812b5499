"""Prometheus metrics at /metrics, for operators only (a staff session the admin would let in, or
`Authorization: Bearer $PGP_METRICS_TOKEN`; anyone else gets 403).

A custom collector reads the database at scrape time, so every web process answers the same and
no multiprocess state is kept. `pgp_alerts_total` is a counter (a row per alert name, only ever
incremented), and so is `pgp_webhook_attempts_total` (a row per outcome); everything else is a
gauge read from what the database already records: IPNs are counted from their stored events
(refused ones are pruned after PGP_REJECTED_IPN_RETENTION_DAYS, so that count may fall: not a
Prometheus counter); the outbox lag is the age of the oldest event not yet delivered; retries
and failures from the `attempts` and `last_error` every batch and host payment carries (each
retry and each give-up increments `attempts`, see pgp_project.operations.scheduling).
"""

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from batching.models import BatchConversion
from integrations.exchange.registry import configured_providers
from payments.models import IpnOutcome, Payment, PaymentEvent, RoutingStatus
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch
from pgp_project.admin_site import operator_access_allowed
from pgp_project.operations.alerts import alert_counts
from pgp_project.operations.attention import needs_attention
from pgp_project.operations.circuit_breaker import BreakerState, CallOutcome, breaker_state, service_health
from webhooks.services import delivery_counters, outbox_lag_seconds

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
        ipn = GaugeMetricFamily(
            "pgp_ipn_events", "IPNs received and recorded, by what was done with them", labels=["outcome"]
        )
        counted = dict(PaymentEvent.objects.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
        for outcome in IpnOutcome.values:
            ipn.add_metric([outcome], counted.get(outcome, 0))
        yield ipn

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
        now = timezone.now()
        for kind, model in BATCH_MODELS.items():
            by_status = dict(
                model._default_manager.values_list("status").annotate(n=Count("id")).values_list("status", "n")
            )
            for status in BatchStatus.values:
                batches.add_metric([kind, status], by_status.get(status, 0))
            self._items(
                kind,
                model,
                ~Q(status__in=CLOSED_BATCH),
                Q(status__in=REVIEW_BATCH),
                now,
                attempts,
                failing,
                failed,
                oldest,
            )
        yield batches

        host_payments = GaugeMetricFamily(
            "pgp_host_payments", "Host payments (hot-wallet sends) by state", labels=["status"]
        )
        by_status = dict(HostPayment.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
        for status in HostPaymentStatus.values:
            host_payments.add_metric([status], by_status.get(status, 0))
        yield host_payments
        self._items(
            "host_payment",
            HostPayment,
            Q(status__in=OPEN_HOST_PAYMENT),
            Q(status=HostPaymentStatus.FAILED),
            now,
            attempts,
            failing,
            failed,
            oldest,
        )
        held = Payment.objects.filter(routing_status=RoutingStatus.HELD).aggregate(first=Min("created_at"))["first"]
        oldest.add_metric(["held_payment"], (now - held).total_seconds() if held else 0)
        yield from (attempts, failing, failed, oldest)

        attention = needs_attention()
        total = GaugeMetricFamily("pgp_needs_attention_total", "Items that need a person")
        total.add_metric([], float(attention["total"]))  # type: ignore[arg-type]
        yield total
        reasons = GaugeMetricFamily("pgp_needs_attention", "Items that need a person, by reason", labels=["reason"])
        breakdown: dict[str, int] = attention["breakdown"]  # type: ignore[assignment]
        for reason, count in sorted(breakdown.items()):
            reasons.add_metric([reason], count)
        yield reasons

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

        yield from exchange_provider_metrics()

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
        failed_items: Q,
        now: Any,
        attempts: GaugeMetricFamily,
        failing: GaugeMetricFamily,
        failed: GaugeMetricFamily,
        oldest: GaugeMetricFamily,
    ) -> None:
        manager = model._default_manager
        attempts.add_metric([kind], manager.aggregate(total=Sum("attempts"))["total"] or 0)
        failing.add_metric([kind], manager.filter(open_items).exclude(last_error="").count())
        failed.add_metric([kind], manager.filter(failed_items).count())
        first = manager.filter(open_items).aggregate(first=Min("created_at"))["first"]
        oldest.add_metric([kind], (now - first).total_seconds() if first else 0)


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
