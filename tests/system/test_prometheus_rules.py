"""The alerting rules that ship (deploy/prometheus/) load in Prometheus, pass their promtool unit
tests, and read only metrics /metrics exports; and a real scrape passes `promtool check metrics`."""

import subprocess

import pytest
import yaml

from ..monitoring import (
    PROMETHEUS_DIR,
    exported_names,
    missing_or_awaited,
    promql_metric_names,
    promtool,
    scrape_with_every_family,
)

pytestmark = pytest.mark.django_db


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *arguments], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)


def test_the_rules_load() -> None:
    result = run("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_rule_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = run("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every rule has a case where it fires and one where it must not.
    rules = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    cases = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert rules - firing == set(), "rules without a case where they fire"
    assert rules - quiet == set(), "rules without a case where they must not fire"


def test_a_real_scrape_passes_promtool_check_metrics() -> None:
    text = scrape_with_every_family()
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    problems = result.stdout + result.stderr
    assert result.returncode == 0, problems
    assert not problems.strip(), problems  # lint findings are printed, even when it exits 0


def test_every_rule_reads_a_metric_the_product_exports() -> None:
    exported = exported_names(scrape_with_every_family())
    rules = [
        rule
        for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    used = {name for rule in rules for name in promql_metric_names(rule["expr"])}
    missing_or_awaited(used, exported, "the alerting rules")
