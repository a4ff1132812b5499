"""GET /health/: 200 only when database, broker and Beat are all well."""

from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from pgp_project.operations.models import JobHeartbeat
from pgp_project.operations.services import job_heartbeat

pytestmark = pytest.mark.django_db


def test_healthy_when_database_broker_and_beat_are_fresh(client: HttpClient) -> None:
    with job_heartbeat("operations.recovery_sweep"):
        pass
    response = client.get("/health/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["broker"]["ok"]
    assert body["checks"]["beat"]["ok"]
    assert body["checks"]["broker"]["transport"] == "redis"


def test_unhealthy_before_any_periodic_job_ran(client: HttpClient) -> None:
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"]["ok"] is False


def test_unhealthy_when_beat_is_stale(client: HttpClient, settings) -> None:
    settings.PGP_BEAT_STALE_AFTER_SECONDS = 120
    JobHeartbeat.objects.create(
        job_name="operations.recovery_sweep", last_started_at=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/health/")
    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["last_run_age_seconds"] >= 300


def test_unhealthy_when_broker_is_unreachable(client: HttpClient, settings) -> None:
    with job_heartbeat("operations.recovery_sweep"):
        pass
    # A real connection attempt to a port where nothing listens, with a password in the URL
    # that must not leak into the answer.
    settings.CELERY_BROKER_URL = "redis://:hunter2secret@127.0.0.1:1/0"
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True
    assert b"hunter2secret" not in response.content


def test_error_reports_hide_connection_urls_and_keys(settings) -> None:
    from django.views.debug import get_default_exception_reporter_filter

    settings.ETH_RPC_URL = "https://mainnet.example/v3/secret-project-key"
    safe = get_default_exception_reporter_filter().get_safe_settings()
    for name in ("ETH_RPC_URL", "CELERY_BROKER_URL", "HOT_WALLET_PRIVATE_KEY", "NOWPAYMENTS_IPN_SECRET"):
        assert "secret-project-key" not in str(safe[name]), name
        assert safe[name] == "********************", name
