"""What the monitoring tests share: promtool (Debian's `prometheus` package), a real scrape of
/metrics with every family present, the metric names a scrape exports, and the metric names a
PromQL expression reads."""

import os
import re
import shutil
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from console.models import HotWalletSnapshot, ReconciliationRun, ReconciliationStatus

from .conftest import PROJECT_ROOT, ipn_body, post_ipn
from .factories import ClientFactory

PROMETHEUS_DIR = PROJECT_ROOT / "deploy" / "prometheus"
GRAFANA_DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "pgp-dashboard.json"
TOKEN = "metrics-token-for-the-monitoring-tests-0123"
# Prometheus's own series: each target's `up` and the rules' `ALERTS`.
PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def promtool() -> str:
    """The promtool binary. Missing, the test skips on a developer's machine but fails in CI
    (CI=true, or PGP_TEST_REQUIRE_PROMTOOL=1): .ci/run and `make test` install it with apt."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is needed (apt-get install prometheus; make test installs it with apt when it can)"
        if os.environ.get("CI") == "true" or os.environ.get("PGP_TEST_REQUIRE_PROMTOOL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def scrape_with_every_family() -> str:
    """/metrics as Prometheus reads it (the bearer token), after writing a row for every family
    that exports nothing until it has one: an IPN of each kind, a hot-wallet reading, a
    reconciliation run. Needs the database."""
    settings.PGP_METRICS_TOKEN = TOKEN
    ClientFactory.create(external_id="-1001234567890")
    http = HttpClient()
    post_ipn(http, ipn_body(payment_id=1))
    post_ipn(http, ipn_body(payment_id=2), signature="00" * 64)
    now = timezone.now()
    for chain in settings.PGP_CHAINS:
        HotWalletSnapshot.objects.update_or_create(
            chain=chain, defaults={"balances": {"eth": "1.5"}, "fetched_at": now}
        )
    ReconciliationRun.objects.create(
        range_start=now - timedelta(days=1), range_end=now, status=ReconciliationStatus.OK, triggered_by="command"
    )
    response = HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def exported_names(text: str) -> set[str]:
    """Every family and sample name of a scrape: a counter's family `x` and its `x_total`, a
    summary's `x` and its `x_sum` and `x_count`."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")  # declared even while it has no sample
        if family.type in ("summary", "histogram"):
            names.update(f"{family.name}{suffix}" for suffix in ("_sum", "_count", "_bucket"))
    return names


# What is not a metric name in PromQL: keywords, and words followed by "(" are functions or
# aggregations; label matchers, strings, ranges, grouping clauses and dashboard variables go first.
PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"})
PROMQL_KEYWORDS |= {"offset", "bool", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_WORD = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def missing_or_awaited(used: set[str], exported: set[str], what: str) -> None:
    """Fail naming every metric `used` that /metrics does not export; xfail while the only ones
    missing are the provider routing's, awaited from its branch."""
    missing = used - exported - PROMETHEUS_OWN
    assert missing == set(), f"{what} read metrics /metrics does not export: {sorted(missing)}"


def promql_metric_names(expression: str) -> set[str]:
    text = _VARIABLES.sub("1", _STRINGS.sub('""', expression))
    text = _GROUPING.sub(" ", _RANGES.sub(" ", _MATCHERS.sub(" ", text)))
    names = set()
    for match in _WORD.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names
