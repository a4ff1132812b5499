"""GET /health/: 200 only when database, broker and Beat are all well; the details only for
operators (a staff session or the health token); answered within its budget even when the
broker hangs."""

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from pgp_project.operations.models import JobHeartbeat
from pgp_project.operations.services import job_heartbeat

from ..factories import StaffUserFactory

pytestmark = pytest.mark.django_db
HEALTH_TOKEN = "health-token-for-the-tests-0123456789"


@pytest.fixture
def client(settings) -> HttpClient:
    """An operator's monitoring: the bearer token on every request."""
    settings.PGP_HEALTH_TOKEN = HEALTH_TOKEN
    return HttpClient(HTTP_AUTHORIZATION=f"Bearer {HEALTH_TOKEN}")


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


def test_error_reports_hide_connection_urls_and_keys(settings, monkeypatch) -> None:
    from django.views.debug import get_default_exception_reporter_filter

    from pgp_project.error_reports import configured_secrets

    settings.CELERY_BROKER_URL = "redis://:secret-project-key@redis.example:6379/0"
    safe = get_default_exception_reporter_filter().get_safe_settings()
    for name in ("CELERY_BROKER_URL", "NOWPAYMENTS_IPN_SECRET"):
        assert "secret-project-key" not in str(safe[name]), name
        assert safe[name] == "********************", name
    # A chain's node URL lives in the variable its PGP_CHAINS entry names: hidden wherever it appears.
    monkeypatch.setenv("ETH_RPC_URL", "https://mainnet.example/v3/secret-node-key")
    assert "https://mainnet.example/v3/secret-node-key" in configured_secrets()


def test_the_public_learns_only_up_or_down(settings) -> None:
    settings.PGP_HEALTH_TOKEN = HEALTH_TOKEN
    public = HttpClient()
    response = public.get("/health/")
    assert (response.status_code, response.json()) == (503, {"status": "unhealthy"})  # no Beat yet
    with job_heartbeat("operations.recovery_sweep"):
        pass
    response = public.get("/health/")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    for wrong in (f"Bearer {HEALTH_TOKEN}x", f"Basic {HEALTH_TOKEN}", "Bearer ", HEALTH_TOKEN):
        assert HttpClient(HTTP_AUTHORIZATION=wrong).get("/health/").json() == {"status": "ok"}, wrong


def test_no_token_configured_means_no_token_access(settings) -> None:
    settings.PGP_HEALTH_TOKEN = ""
    assert HttpClient(HTTP_AUTHORIZATION="Bearer ").get("/health/").json() == {"status": "unhealthy"}


def test_staff_sessions_see_the_details(settings) -> None:
    staff = HttpClient()
    staff.force_login(StaffUserFactory.create(username="operator", is_superuser=False))
    assert staff.get("/health/").json()["checks"]["broker"]["transport"] == "redis"
    # ... as the admin sees them: money holders only with a two-factor session where required.
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    root = HttpClient()
    root.force_login(StaffUserFactory.create(username="root", is_superuser=True))
    assert "checks" not in root.get("/health/").json()


@pytest.fixture
def hung_broker() -> Iterator[int]:
    """A real TCP listener on loopback that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_hung_broker_is_unhealthy_within_the_budget(client: HttpClient, settings, hung_broker: int) -> None:
    with job_heartbeat("operations.recovery_sweep"):
        pass
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{hung_broker}/0"
    settings.PGP_HEALTH_CHECK_TIMEOUT_SECONDS = 1.5
    started = time.monotonic()
    response = client.get("/health/")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 1.5 + 2, f"answered after {elapsed:.1f}s"
