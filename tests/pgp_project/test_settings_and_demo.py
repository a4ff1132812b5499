"""Production settings refuse to start without secrets; the demo command runs and stops cleanly."""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import psycopg2
import pytest

from standins.demo import SECOND_CHAIN

from ..conftest import PROJECT_ROOT

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "pgp_project.settings.production",
    "DJANGO_SECRET_KEY": "x7#Qm2!vR9pL0s$Wz4&tY8uK1eN6bH3jD5gF-production-grade-secret-key",
    "NOWPAYMENTS_IPN_SECRET": "ipn-secret-from-the-environment",
    "DJANGO_ALLOWED_HOSTS": "payouts.example.com",
    "DATABASE_URL": "postgres://pgp@127.0.0.1:5432/pgp_deploy_check",  # named, never connected to
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
}


def run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NOWPAYMENTS_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_production_settings(tmp_path: Path) -> None:
    # A release collects the static files first (without, check --deploy says so: operations.E001).
    env = {**PRODUCTION_ENV, "DJANGO_STATIC_ROOT": str(tmp_path / "static")}
    collected = run_manage(["collectstatic", "--noinput"], env)
    assert collected.returncode == 0, collected.stderr
    result = run_manage(["check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "NOWPAYMENTS_IPN_SECRET"])
def test_production_refuses_to_start_without_secret(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage(["check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_refuses_an_empty_ipn_secret() -> None:
    result = run_manage(["check"], {**PRODUCTION_ENV, "NOWPAYMENTS_IPN_SECRET": ""})
    assert result.returncode != 0
    assert "NOWPAYMENTS_IPN_SECRET" in result.stderr


@pytest.mark.parametrize(
    ("database_url", "refusal"),
    [
        ("", "DATABASE_URL must name the PostgreSQL database"),
        ("sqlite:////tmp/pgp-refused.db", "DATABASE_URL must name a PostgreSQL database"),
    ],
    ids=["missing", "another-engine"],
)
def test_production_refuses_to_start_without_a_postgresql_database(database_url: str, refusal: str) -> None:
    result = run_manage(["check"], {**PRODUCTION_ENV, "DATABASE_URL": database_url})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert refusal in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback only
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def child_pids(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def process_runs(pid: int) -> bool:
    """Not exited; an exited process that init has not reaped yet (a zombie) runs nothing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_demo_command_runs_everything_converts_payments_and_stops_cleanly(reachable_folder: Path) -> None:
    """README command (1) without its install step: the embedded default (the demo's own
    PostgreSQL server under the var folder, and the kombu filesystem broker). Healthy means the
    web answered, the database and broker are reachable, and a periodic job ran, which takes Beat
    sending and a worker executing; then simulated payments complete a conversion within two
    minutes. When it stops, its PostgreSQL server stops too."""
    web_port, flower_port, chain_port, sandbox_port = free_port(), free_port(), free_port(), free_port()
    second_chain_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_URL"))}
    # The health details (which transport the broker is) are for operators: the token says we are.
    health_token = "demo-test-health-token"
    env.update(PGP_VAR_DIR=str(reachable_folder), DJANGO_SETTINGS_MODULE="pgp_project.settings.local")
    env.update(PGP_HEALTH_TOKEN=health_token)
    log_path = reachable_folder / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_demo",
                f"--web-port={web_port}",
                f"--flower-port={flower_port}",
                f"--chain-port={chain_port}",
                f"--second-chain-port={second_chain_port}",
                f"--sandbox-port={sandbox_port}",
                f"--webhook-port={free_port()}",
                "--payment-interval=2",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        status, body = 0, cast(dict[str, Any], {})
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                status, body = get_json(
                    f"http://127.0.0.1:{web_port}/health/", {"Authorization": f"Bearer {health_token}"}
                )
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(1)
        log_text = log_path.read_text()
        assert status == 200, f"health never became 200: {body}\n{log_text[-3000:]}"
        assert body["checks"]["broker"]["transport"] == "filesystem"
        assert "password" in log_text
        assert "/admin/" in log_text
        # The pacing actually in use, as stored for Beat (the demo's short intervals).
        assert "Micro-batch conversion check: every 30 seconds" in log_text
        assert "Recovery sweep: every 10 seconds" in log_text
        assert "Prune refused IPN records: every 86400 seconds" in log_text
        # Flower is never open: the banner gives this run's password, and without it Flower says 401.
        found = re.search(r"flower: (\S+)\s+user (\S+) password (\S+)", log_text)
        assert found, log_text[-3000:]
        flower_url, flower_user, flower_password = found.groups()
        assert flower_url == f"http://127.0.0.1:{flower_port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(flower_url, timeout=5)  # noqa: S310 - loopback only
        assert refused.value.code == 401
        credentials = base64.b64encode(f"{flower_user}:{flower_password}".encode()).decode()
        for path in ("", "api/workers"):
            request = urllib.request.Request(flower_url + path, headers={"Authorization": f"Basic {credentials}"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=10) as flower:  # noqa: S310 - loopback only
                assert flower.status == 200, path
        # The banner's gateway API key reads the demo's clients.
        api_key = re.search(r"API:\s+(\S+)\s+key (\S+)", log_text)
        assert api_key, log_text[-3000:]
        assert api_key[1] == f"http://127.0.0.1:{web_port}/api/v1/docs/"
        api_status, clients = get_json(
            f"http://127.0.0.1:{web_port}/api/v1/clients/", {"Authorization": f"Api-Key {api_key[2]}"}
        )
        assert api_status == 200
        assert clients["results"]
        # two chains, sandbox, web, worker, beat, flower, payments
        assert len(child_pids(demo.pid)) == 9
        assert "celery@" in log_text or "demo@" in log_text  # the worker announced itself
        assert "beat: Starting" in log_text

        # Simulated payments flow through a micro-batch conversion on anvil and the sandbox ...
        # ... on the demo's own PostgreSQL server, reached through its socket in the var folder ...
        server_pid = int((reachable_folder / "postgres" / "postmaster.pid").read_text().split()[0])
        assert f"PostgreSQL (embedded) running in {reachable_folder / 'postgres'}, pid {server_pid}" in log_text

        def completed(table: str, where: str = "TRUE") -> int:
            with (
                closing(psycopg2.connect(host=str(reachable_folder / "postgres"), user="postgres", dbname="pgp")) as db,
                db.cursor() as cursor,
            ):
                cursor.execute(f"SELECT count(*) FROM {table} WHERE status = 'completed' AND {where}")  # noqa: S608
                return cursor.fetchone()[0]

        # ... client payouts complete too (the instant demo client's come first), and one client
        # is paid in USDT straight from our wallet on the second chain: no exchange.
        on_second_chain = f"payout_network = '{SECOND_CHAIN}' AND exchange_provider = 'direct'"
        # Which client a payment is for is random: the second-chain client's credit passes its
        # threshold after one conversion or a few (under CI's load, minutes).
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and not (
            completed("batch_conversions") and completed("payout_batches", on_second_chain)
        ):
            time.sleep(2)
        assert completed("batch_conversions") >= 1, log_path.read_text()[-3000:]
        assert completed("payout_batches") >= 1, log_path.read_text()[-3000:]
        assert completed("payout_batches", on_second_chain) >= 1, log_path.read_text()[-3000:]
        assert "ALERT" not in log_path.read_text()
        # ... and the demo's receiver printed verified webhooks of them.
        assert "webhook payment.received payment #" in log_path.read_text()
        assert "webhook conversion.completed conversion #" in log_path.read_text()

        children = child_pids(demo.pid)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=40) == 0, log_path.read_text()[-3000:]
        assert "PGP demo stopped cleanly." in log_path.read_text()
        time.sleep(0.5)
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "a child outlived the demo"
        assert "PostgreSQL (embedded) stopped." in log_path.read_text()
        assert not process_runs(server_pid), "the demo's PostgreSQL server outlived the demo"
    finally:
        if demo.poll() is None:
            demo.kill()


# --- entry points default to production; local settings have no public secret -------------------


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NOWPAYMENTS_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "entry_point",
    [
        "import runpy, sys; sys.argv = ['manage.py', 'check']; runpy.run_path('manage.py', run_name='__main__')",
        "import pgp_project.wsgi",
        "from pgp_project.celery import app; app.loader.import_default_modules()",
    ],
    ids=["manage.py", "wsgi", "celery"],
)
def test_every_entry_point_defaults_to_production_and_refuses_without_secrets(entry_point: str) -> None:
    """No DJANGO_SETTINGS_MODULE and no secrets: production settings, which refuse to start, never
    the demo's (DEBUG on, a made-up secret)."""
    result = run_python(entry_point, {})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_every_entry_point_runs_production_when_its_secrets_are_set() -> None:
    code = (
        "import pgp_project.wsgi; from django.conf import settings;"
        "print(settings.SETTINGS_MODULE, settings.DEBUG, settings.NOWPAYMENTS_IPN_SECRET)"
    )
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "pgp_project.settings.production",
        "False",
        PRODUCTION_ENV["NOWPAYMENTS_IPN_SECRET"],
    ]


def test_local_settings_make_a_random_secret_per_installation(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.NOWPAYMENTS_IPN_SECRET, settings.SECRET_KEY)"
    )
    local = {"DJANGO_SETTINGS_MODULE": "pgp_project.settings.local"}
    first = run_python(code, {**local, "PGP_VAR_DIR": str(tmp_path / "one")})
    again = run_python(code, {**local, "PGP_VAR_DIR": str(tmp_path / "one")})
    other = run_python(code, {**local, "PGP_VAR_DIR": str(tmp_path / "two")})
    assert first.returncode == 0, first.stderr
    ipn_secret, secret_key = first.stdout.split()
    assert len(ipn_secret) >= 32
    assert len(secret_key) >= 32
    assert ipn_secret != secret_key
    assert again.stdout == first.stdout  # every process of one demo signs with the same secret
    assert other.stdout.split()[0] != ipn_secret
    assert oct((tmp_path / "one" / "secrets" / "ipn_secret").stat().st_mode & 0o777) == "0o600"


def test_the_demo_reports_a_busy_port_before_its_banner_and_changes_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_URL"))}
        env.update(PGP_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="pgp_project.settings.local")
        env["PGP_FLOWER_PORT"] = str(busy)  # chosen as docs/operations.md says, from the environment
        result = subprocess.run(
            [sys.executable, "manage.py", "run_demo", f"--web-port={free_port()}"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert f"flower port {busy} is in use (set PGP_FLOWER_PORT to another)" in result.stderr
    assert "password" not in result.stdout + result.stderr
    assert not (tmp_path / "postgres").exists()  # nothing was reset or started
