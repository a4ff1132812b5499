"""The Grafana dashboard that ships (deploy/grafana/pgp-dashboard.json) is a dashboard Grafana
imports, and every query in it reads metrics /metrics exports (scraped here, for real)."""

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..monitoring import (
    GRAFANA_DASHBOARD,
    exported_names,
    missing_or_awaited,
    promql_metric_names,
    promtool,
    scrape_with_every_family,
)

pytestmark = pytest.mark.django_db
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,")


def panels(container: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in container.get("panels", []):
        yield panel
        yield from panels(panel)  # a collapsed row holds its panels


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]


def test_the_dashboard_is_one_grafana_imports() -> None:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    assert dashboard["uid"] == "pgp-payouts"
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert panel["title"], panel
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            # Through the dashboard's data-source variable: it imports into any Grafana.
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"


def test_every_query_names_a_metric_the_product_exports() -> None:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    used: set[str] = set()
    for where, expression in queries(dashboard):
        names = promql_metric_names(expression)
        assert names, f"{where} reads no metric: {expression}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        used.update(LABEL_VALUES.findall(query))
    # What the dashboard is for: each of these is on it.
    for wanted in (
        "pgp_ipn_events_total",
        "pgp_batches",
        "pgp_needs_attention",
        "pgp_needs_attention_oldest_age_seconds",
        "pgp_hot_wallet_balance",
        "pgp_hot_wallet_low_balance_floor",
        "pgp_periodic_task_last_run_timestamp_seconds",
        "pgp_outbox_lag_seconds",
        "pgp_webhook_attempts_total",
        "pgp_alerts_total",
        "pgp_exchange_provider_calls_total",
        "pgp_exchange_provider_call_seconds_sum",
        "pgp_exchange_provider_circuit_open",
    ):
        assert wanted in used, wanted
    missing_or_awaited(used, exported_names(scrape_with_every_family()), "the dashboard's queries")


def test_its_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables given values, is PromQL promtool accepts (as the
    expression of a recording rule: one promtool run for them all)."""
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    rules = [
        {"record": f"pgp:dashboard_query_{number}", "expr": expression.replace("$__rate_interval", "5m")}
        for number, (_, expression) in enumerate(queries(dashboard))
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
