"""The production shape, exercised as deployed: gunicorn with the committed gunicorn.conf.py and
Flower with the committed flowerconfig.py, real processes on loopback ports, production settings."""

import base64
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from psycopg2 import sql

from ..conftest import PROJECT_ROOT
from ..pgp_project.test_settings_and_demo import PRODUCTION_ENV, free_port, run_manage

pytestmark = pytest.mark.slow
HOST = PRODUCTION_ENV["DJANGO_ALLOWED_HOSTS"]
# What our reverse proxy adds: the request came in over HTTPS (else production redirects to it).
PROXY_HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "NOWPAYMENTS_", "DATABASE_URL", "FLOWER_", "GUNICORN_", "WEB_CONCURRENCY"))
    }
    return {**inherited, **extra}


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.2)
        else:
            return
    pytest.fail(f"nothing listens on {port}")


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.stdout.read() if process.stdout else ""


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --- Flower ---------------------------------------------------------------------------------


def start_flower(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pgp_project", "flower", f"--port={port}"],
        cwd=PROJECT_ROOT,  # flower reads flowerconfig.py from its working directory
        env=clean_environment({**PRODUCTION_ENV, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13", **env}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_flower_refuses_to_start_without_authentication() -> None:
    flower = start_flower({}, free_port())
    try:
        output, _ = flower.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        flower.kill()
        raise
    assert flower.returncode != 0
    assert "Flower refuses to start without authentication: set FLOWER_BASIC_AUTH" in output


def test_flower_with_basic_auth_protects_every_page_and_metrics() -> None:
    port = free_port()
    flower = start_flower({"FLOWER_BASIC_AUTH": "ops:s3cret-flower"}, port)
    try:
        wait_for_port(port, flower)
        base = f"http://127.0.0.1:{port}"
        good = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret-flower").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}
        for path in ("/", "/metrics", "/api/tasks"):
            assert fetch(base + path)[0] == 401, path
            assert fetch(base + path, bad)[0] == 401, path
            status, _, body = fetch(base + path, good)
            assert status == 200, (path, body[:300])
        assert b"# HELP" in fetch(base + "/metrics", good)[2]  # Prometheus text, for a scraper with the password
    finally:
        output = stop(flower)
    assert f"Visit me at http://127.0.0.1:{port}" in output  # bound to loopback by default


# --- gunicorn, static files, CSP --------------------------------------------------------------


@pytest.fixture(scope="module")
def production_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated PostgreSQL database of its own and collected static files, as a release makes
    them."""
    folder = tmp_path_factory.mktemp("production")
    with production_database() as database_url:
        env = {
            **PRODUCTION_ENV,
            "DATABASE_URL": database_url,
            "DJANGO_STATIC_ROOT": str(folder / "static"),
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
        }
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
            result = run_manage(command, env)
            assert result.returncode == 0, result.stdout + result.stderr
        yield env


@contextlib.contextmanager
def production_database() -> Iterator[str]:
    """A fresh database on the test suite's PostgreSQL server, dropped afterwards."""
    server = settings.DATABASES["default"]
    name = f"pgp_production_surface_{os.getpid()}"
    credentials = server["USER"] + (f":{server['PASSWORD']}" if server["PASSWORD"] else "")
    url = f"postgres://{credentials}@{server['HOST'] or '127.0.0.1'}:{server['PORT'] or 5432}/{name}"
    admin = psycopg2.connect(
        host=server["HOST"] or "127.0.0.1",
        port=server["PORT"] or 5432,
        user=server["USER"],
        password=server["PASSWORD"],
        dbname="postgres",
    )
    admin.autocommit = True
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    try:
        with admin.cursor() as cursor:
            cursor.execute(drop)
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield url
    finally:
        with admin.cursor() as cursor:
            cursor.execute(drop)
        admin.close()


# Seconds a stalled body holds a thread before its 408 (10 in production): the fuzz stalls a few.
GUNICORN_READ_TIMEOUT = 4


@pytest.fixture(scope="module")
def gunicorn_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"


@pytest.fixture(scope="module")
def gunicorn(production_site: dict[str, str], gunicorn_log: Path) -> Iterator[str]:
    """gunicorn as docs/deployment.md starts it (the committed gunicorn.conf.py), small: 2 workers x 2
    threads, so a handful of slow clients is more than one worker's threads. Its log goes to a
    file: a pipe nobody reads fills up and blocks every thread that logs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "pgp_project.wsgi"],
        cwd=PROJECT_ROOT,
        env=clean_environment(
            {
                **production_site,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "2",
                "GUNICORN_THREADS": "2",
                "GUNICORN_READ_TIMEOUT": str(GUNICORN_READ_TIMEOUT),
            }
        ),
        stdout=gunicorn_log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def test_check_deploy_reports_a_missing_static_manifest(tmp_path: Path) -> None:
    result = run_manage(["check", "--deploy"], {**PRODUCTION_ENV, "DJANGO_STATIC_ROOT": str(tmp_path)})
    assert result.returncode != 0
    assert "operations.E001" in result.stderr
    assert "collectstatic --noinput" in result.stderr


def test_after_collectstatic_check_deploy_is_clean_and_the_admin_has_its_css(
    production_site: dict[str, str], gunicorn: str
) -> None:
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], production_site)
    assert result.returncode == 0, result.stdout + result.stderr
    status, _, page = fetch(gunicorn + "/admin/login/", PROXY_HEADERS)
    assert status == 200, page[-2000:]
    stylesheets = re.findall(rb'href="(/static/[^"]+\.css)"', page)
    assert stylesheets
    for stylesheet in stylesheets:
        status, headers, css = fetch(gunicorn + stylesheet.decode(), PROXY_HEADERS)
        assert status == 200, stylesheet
        assert headers["Content-Type"].startswith("text/css")
        assert css


def test_content_security_policy_on_the_admin_and_health(gunicorn: str) -> None:
    for path in ("/admin/login/", "/health/"):
        _, headers, _ = fetch(gunicorn + path, PROXY_HEADERS)
        policy = headers["Content-Security-Policy"]
        directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
        assert directives["default-src"] == ["'self'"], policy
        assert directives["frame-ancestors"] == ["'none'"], policy
        assert directives["form-action"] == ["'self'"], policy
        assert "unsafe-eval" not in policy, policy
        assert "unsafe-inline" not in policy, policy


class SlowClient(threading.Thread):
    """Sends an IPN's headers with a Content-Length, then trickles the body one byte a second."""

    def __init__(self, url: str, seconds: int) -> None:
        super().__init__(daemon=True)
        port = int(url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(
            b"POST /webhooks/nowpayments/ HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Forwarded-Proto: https\r\n"
            b"Content-Type: application/json\r\nx-nowpayments-sig: abc\r\nContent-Length: 1000\r\n\r\n"
        )
        self.seconds = seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        for _ in range(self.seconds):
            if self.stopped.wait(1):
                break
            try:
                self.sock.sendall(b" ")
            except OSError:
                break
        self.sock.close()


def timed_bad_ipn(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status, _, _ = fetch(
        url + "/webhooks/nowpayments/",
        {**PROXY_HEADERS, "Content-Type": "application/json", "x-nowpayments-sig": "0" * 128},
        data=b'{"payment_id": 1}',
    )
    return status, time.monotonic() - started


def test_slow_clients_do_not_hold_the_ipn_endpoint(gunicorn: str) -> None:
    # Three slow bodies at once: more than one worker's two threads.
    slow = [SlowClient(gunicorn, seconds=20) for _ in range(3)]
    for client in slow:
        client.start()
    try:
        time.sleep(1.5)  # they are connected and being read
        timings = [timed_bad_ipn(gunicorn) for _ in range(5)]
        assert [status for status, _ in timings] == [401] * 5
        slowest = max(elapsed for _, elapsed in timings)
        print(f"IPN answered in at most {slowest:.2f}s while 3 slow clients were connected")
        assert slowest < 2, timings
        assert all(client.is_alive() for client in slow)  # still trickling
    finally:
        for client in slow:
            client.stopped.set()
        for client in slow:
            client.join()


def test_a_connection_that_sends_nothing_is_dropped(gunicorn: str) -> None:
    from pgp_project.gunicorn_worker import FIRST_BYTE_TIMEOUT

    silent = socket.create_connection(("127.0.0.1", int(gunicorn.rsplit(":", 1)[1])), timeout=FIRST_BYTE_TIMEOUT + 5)
    started = time.monotonic()
    try:
        assert silent.recv(1) == b""  # closed by the server
    finally:
        silent.close()
    assert FIRST_BYTE_TIMEOUT - 0.5 < time.monotonic() - started < FIRST_BYTE_TIMEOUT + 3


def test_the_fuzz_corpus_over_http_with_production_settings_gets_no_5xx_and_no_traceback(
    gunicorn: str, gunicorn_log: Path, production_site: dict[str, str], tmp_path: Path
) -> None:
    """Hostile and malformed IPNs, a third signed with the production secret, as an attacker
    sends them: through the proxy's headers to gunicorn with production settings; a fifth of them
    with broken chunked framing or bodies that stop early, over raw sockets. (The committed run of
    10,000: benchmarks/ipn_fuzz.py.)"""
    logged_before = gunicorn_log.stat().st_size  # the module's other tests log to it too
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "fuzz_ipn",
            f"--url={gunicorn}/webhooks/nowpayments/",
            "--count=1000",
            # Two at a time: a stalled case holds one of the 4 threads for the read timeout, and
            # more at once would meet load shedding's 503.
            "--concurrency=2",
            f"--secret={production_site['NOWPAYMENTS_IPN_SECRET']}",
            *(f"--header={name}: {value}" for name, value in PROXY_HEADERS.items()),
        ],
        cwd=PROJECT_ROOT,
        env=clean_environment({"DJANGO_SETTINGS_MODULE": "pgp_project.settings.local", "PGP_VAR_DIR": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    answers = dict(re.findall(r"(\d{3}): (\d+)", result.stdout))
    assert int(answers.get("200", 0)) > 0  # signed cases reached the intake and were recorded
    assert {"400", "401", "408", "413", "422"} <= set(answers), result.stdout
    assert not any(status.startswith("5") for status in answers), result.stdout
    assert "client reset" in result.stdout  # the raw-socket cases ran
    log = gunicorn_log.read_bytes()[logged_before:].decode()
    assert "POST /webhooks/nowpayments/" in log
    assert "Traceback" not in log
    assert not re.search(r'" 5\d\d ', log), "a 5xx in the access log"
