"""The alert catalogue: every alert line is declared once (name, severity, what happened, what to
do), written by one function that refuses anything else, throttled per alert and subject, counted
in /metrics, and documented in docs/alerts.md from the catalogue itself."""

import ast
import importlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client as HttpClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from console.alerts import RECONCILIATION_DISCREPANCY
from payouts.alerts import EXCHANGE_PAYOUT_UNSEEN, EXCHANGE_VERIFYING, HOST_PAYMENT_FEE_CAP, HOT_WALLET_INSUFFICIENT
from payouts.host_payments.machine import _wait
from payouts.models import HostPaymentWait
from pgp_project.operations.alerts import (
    ALERT_DOCS_PATH,
    ENQUEUE_FAILED,
    Alert,
    Repeat,
    Severity,
    Subject,
    UnknownAlert,
    alert,
    alert_catalogue,
    alert_counts,
    alert_docs_markdown,
    prune_alert_throttles,
)
from pgp_project.operations.models import AlertThrottle

from ..conftest import PROJECT_ROOT, run_at_the_same_moment
from ..factories import HostPaymentFactory

PRODUCTION_PACKAGES = ("pgp_project", "integrations", "payments", "payouts", "batching", "console", "webhooks")
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
TOKEN = "metrics-token-for-the-alert-tests-0123456789"


def alert_lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(f"ALERT {name} ")]


# --- the catalogue --------------------------------------------------------------------------------


def test_the_catalogue_holds_every_alert_once_with_what_an_operator_needs() -> None:
    catalogue = alert_catalogue()
    names = [definition.name for definition in catalogue]
    assert len(names) == len(set(names)) >= 29
    for definition in catalogue:
        assert definition.name.isidentifier()
        assert definition.name.islower()
        assert definition.severity in Severity
        assert definition.what_happened.strip()
        assert definition.what_to_do.strip()


def test_an_alert_not_in_the_catalogue_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    unknown = Alert("no_such_alert", Severity.ERROR, "Nothing.", "Nothing.")
    # A copy of a registered name with other words is not the catalogue's alert either.
    lookalike = Alert(ENQUEUE_FAILED.name, Severity.WARNING, "Something else.", "Something else.")
    with caplog.at_level(logging.DEBUG, logger="pgp.alerts"):
        for definition in (unknown, lookalike):
            with pytest.raises(UnknownAlert):
                alert(definition, Subject("task", 1), id=1)
    assert "ALERT" not in caplog.text


@pytest.mark.django_db
def test_a_throttled_alert_needs_a_subject() -> None:
    with pytest.raises(ValueError, match="needs a subject"):
        alert(EXCHANGE_VERIFYING, None, id=1)


def resolve_alerts(expression: ast.expr, namespace: dict[str, Any]) -> list[object]:
    """The alert objects the first argument of an `alert(...)` call can be."""
    if isinstance(expression, ast.Name):
        return [namespace[expression.id]]
    if isinstance(expression, ast.IfExp):
        return resolve_alerts(expression.body, namespace) + resolve_alerts(expression.orelse, namespace)
    if isinstance(expression, ast.Subscript):  # a table of alerts, e.g. one per wait reason
        (table,) = resolve_alerts(expression.value, namespace)
        assert isinstance(table, dict)
        return list(table.values())
    raise AssertionError(f"cannot tell which alert {ast.unparse(expression)!r} is")


def production_modules() -> list[tuple[str, ast.Module]]:
    found = []
    for package in PRODUCTION_PACKAGES:
        for path in sorted(Path(PROJECT_ROOT, package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
            found.append((module, ast.parse(path.read_text())))
    return found


def test_every_alert_written_in_production_code_is_in_the_catalogue() -> None:
    catalogue = {definition.name: definition for definition in alert_catalogue()}
    written: set[str] = set()
    for module_name, tree in production_modules():
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "alert" and node.args
        ]
        if not calls:
            continue
        namespace = vars(importlib.import_module(module_name))
        for call in calls:
            for definition in resolve_alerts(call.args[0], namespace):
                assert isinstance(definition, Alert), f"{module_name}:{call.lineno}"
                assert catalogue.get(definition.name) == definition, f"{module_name}:{call.lineno} {definition}"
                written.add(definition.name)
    # Every catalogued alert is written somewhere: none is documented for nothing.
    assert written == set(catalogue)


def test_no_alert_line_is_written_by_hand() -> None:
    """One style: a log call whose message starts with ALERT is the catalogue's own only."""
    by_hand = []
    for module_name, tree in production_modules():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in LOG_METHODS or not node.args:
                continue
            first = node.args[1] if node.func.attr == "log" and len(node.args) > 1 else node.args[0]
            if isinstance(first, ast.Constant) and str(first.value).startswith("ALERT"):
                by_hand.append(f"{module_name}:{node.lineno}")
    assert by_hand == []


def test_the_alert_documentation_is_generated_from_the_catalogue() -> None:
    documented = Path(PROJECT_ROOT, ALERT_DOCS_PATH).read_text()
    assert documented == alert_docs_markdown(), "docs/alerts.md is out of date: run `manage.py alert_docs`"
    for definition in alert_catalogue():
        assert f"| `{definition.name}` | {definition.severity} |" in documented
    call_command("alert_docs", "--check")


# --- the line, its throttle and its count ---------------------------------------------------------


@pytest.mark.django_db
def test_the_line_is_structured_and_names_its_subject(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        assert alert(ENQUEUE_FAILED, Subject("payouts.advance", 12), task="payouts.advance", id=12)
    (record,) = caplog.records
    assert record.getMessage() == "ALERT enqueue_failed task=payouts.advance id=12"
    assert record.levelno == logging.ERROR
    extra: dict[str, Any] = vars(record)
    assert extra["alert"] == "enqueue_failed"
    assert extra["alert_severity"] == "error"
    assert (extra["alert_subject_type"], extra["alert_subject_id"]) == ("payouts.advance", "12")
    assert extra["alert_fields"] == {"task": "payouts.advance", "id": "12"}


@pytest.mark.django_db
def test_a_field_named_like_a_python_keyword_is_written_without_its_underscore(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        alert(RECONCILIATION_DISCREPANCY, Subject("reconciliation_run", 4), run=4, from_="2026-12-05", to="2026-12-06")
    assert alert_lines(caplog, RECONCILIATION_DISCREPANCY.name) == [
        "ALERT reconciliation_discrepancy run=4 from=2026-12-05 to=2026-12-06"
    ]
    assert caplog.records[0].levelno == logging.CRITICAL  # a critical alert


@pytest.mark.django_db
def test_each_alert_has_its_own_throttle_per_subject(settings, caplog: pytest.LogCaptureFixture) -> None:
    settings.PGP_ALERT_REPEAT_SECONDS = 1800
    conversion = Subject("conversion", 7)
    before = alert_counts()
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        assert alert(EXCHANGE_VERIFYING, conversion, kind="conversion", id=7)
        assert not alert(EXCHANGE_VERIFYING, conversion, kind="conversion", id=7)  # it lasts: held back
        # Another alert about the same batch is news: no shared stamp silences it.
        assert alert(EXCHANGE_PAYOUT_UNSEEN, conversion, kind="conversion", id=7)
        assert alert(EXCHANGE_VERIFYING, Subject("conversion", 8), kind="conversion", id=8)
        assert alert(EXCHANGE_VERIFYING, Subject("payout", 7), kind="payout", id=7)
    assert alert_lines(caplog, "exchange_verifying") == [
        "ALERT exchange_verifying kind=conversion id=7",
        "ALERT exchange_verifying kind=conversion id=8",
        "ALERT exchange_verifying kind=payout id=7",
    ]
    # Once the interval has passed, the lasting condition is written again.
    AlertThrottle.objects.filter(name=EXCHANGE_VERIFYING.name, subject_type="conversion", subject_id="7").update(
        last_sent_at=timezone.now() - timedelta(seconds=1801)
    )
    assert alert(EXCHANGE_VERIFYING, conversion, kind="conversion", id=7)
    after = alert_counts()
    assert after[EXCHANGE_VERIFYING.name] - before[EXCHANGE_VERIFYING.name] == 4  # lines written, not calls
    assert after[EXCHANGE_PAYOUT_UNSEEN.name] - before[EXCHANGE_PAYOUT_UNSEEN.name] == 1


@pytest.mark.django_db(transaction=True)
def test_workers_meeting_the_same_condition_at_once_write_one_line(settings) -> None:
    settings.PGP_ALERT_REPEAT_SECONDS = 1800
    before = alert_counts()[EXCHANGE_VERIFYING.name]
    results = run_at_the_same_moment(
        lambda: alert(EXCHANGE_VERIFYING, Subject("conversion", 99), kind="conversion", id=99), times=4
    )
    assert sorted(results) == [False, False, False, True]
    assert alert_counts()[EXCHANGE_VERIFYING.name] == before + 1


@pytest.mark.django_db
def test_a_new_reason_to_wait_is_alerted_at_once(settings, caplog: pytest.LogCaptureFixture) -> None:
    """A host payment's wait alerts when it starts; the same wait again is held back, but a
    change of reason (even back to one alerted minutes ago) is news."""
    settings.PGP_ALERT_REPEAT_SECONDS = 1800
    host_payment = HostPaymentFactory.create()
    with caplog.at_level(logging.ERROR, logger="pgp.alerts"):
        _wait(host_payment.pk, HostPaymentWait.BALANCE, RuntimeError("short of USDT"))
        _wait(host_payment.pk, HostPaymentWait.BALANCE, RuntimeError("short of USDT"))
        _wait(host_payment.pk, HostPaymentWait.FEE_CAP, RuntimeError("fees over the cap"))
        _wait(host_payment.pk, HostPaymentWait.BALANCE, RuntimeError("short of USDT again"))
    assert alert_lines(caplog, HOT_WALLET_INSUFFICIENT.name) == [
        f"ALERT hot_wallet_insufficient host_payment={host_payment.pk} error=short of USDT",
        f"ALERT hot_wallet_insufficient host_payment={host_payment.pk} error=short of USDT again",
    ]
    assert len(alert_lines(caplog, HOST_PAYMENT_FEE_CAP.name)) == 1


@pytest.mark.django_db
def test_an_alert_is_written_even_where_it_cannot_be_counted(caplog: pytest.LogCaptureFixture) -> None:
    """An alert about an outage must not fail for the outage: in a transaction the database has
    already refused, the line is written and the count skipped, with no new error."""
    with caplog.at_level(logging.WARNING, logger="pgp.alerts"), transaction.atomic():
        with pytest.raises(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
        assert alert(ENQUEUE_FAILED, Subject("payouts.advance", 3), task="payouts.advance", id=3)
        transaction.set_rollback(True)
    assert alert_lines(caplog, "enqueue_failed") == ["ALERT enqueue_failed task=payouts.advance id=3"]
    assert "alert enqueue_failed written but not counted" in caplog.text


def alerts_scraped(settings) -> tuple[str, dict[str, float]]:
    settings.PGP_METRICS_TOKEN = TOKEN
    response = HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics")
    assert response.status_code == 200
    (family,) = [f for f in text_string_to_metric_families(response.content.decode()) if f.name == "pgp_alerts"]
    totals = {sample.labels["name"]: sample.value for sample in family.samples if sample.name == "pgp_alerts_total"}
    return family.type, totals


@pytest.mark.django_db
def test_metrics_count_alert_lines_and_never_go_down(settings) -> None:
    kind, before = alerts_scraped(settings)
    assert kind == "counter"
    assert set(before) >= {definition.name for definition in alert_catalogue()}  # 0 for those never sent
    alert(EXCHANGE_VERIFYING, Subject("conversion", 5), kind="conversion", id=5)
    alert(ENQUEUE_FAILED, Subject("payouts.advance", 5), task="payouts.advance", id=5)
    alert(ENQUEUE_FAILED, Subject("payouts.advance", 5), task="payouts.advance", id=5)
    _, after = alerts_scraped(settings)
    assert after[EXCHANGE_VERIFYING.name] == before[EXCHANGE_VERIFYING.name] + 1
    assert after[ENQUEUE_FAILED.name] == before[ENQUEUE_FAILED.name] + 2
    # Pruning the throttles (the recovery sweep does) forgets when, never how many.
    AlertThrottle.objects.update(last_sent_at=timezone.now() - timedelta(days=2))
    assert prune_alert_throttles() >= 1
    assert not AlertThrottle.objects.exists()
    _, pruned = alerts_scraped(settings)
    assert pruned == after


def test_severities_and_repeats_are_documented_for_every_alert() -> None:
    documented = alert_docs_markdown()
    assert {definition.repeat for definition in alert_catalogue()} == set(Repeat)
    assert {definition.severity for definition in alert_catalogue()} == set(Severity)
    assert documented.count("\n| `") == len(alert_catalogue())
