"""Shared fixtures: signed IPN posting, clients, and a real Celery worker process.

Nothing of ours is mocked: tests talk to the real PostgreSQL test database and Redis, and the
worker is a real `celery worker` process consuming from a queue private to this test session.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from integrations.nowpayments_signature import sign
from payments.models import Client, PayoutCurrency, PayoutStrategy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IPN_URL = "/webhooks/nowpayments/"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def ipn_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payment_id": 5077125051,
        "invoice_id": None,
        "payment_status": "finished",
        "pay_address": "0xd1cDE08A07cD25adEbEd35c3867a59228C09B606",
        "price_amount": 19.99,
        "price_currency": "usd",
        "pay_amount": 0.0062,
        "actually_paid": 0.0062,
        "pay_currency": "eth",
        "order_id": "PGP-7|-1001234567890",
        "order_description": "Channel subscription",
        "purchase_id": "6084744717",
        "created_at": "2026-11-22T14:22:54.942Z",
        "updated_at": "2026-11-22T14:23:06.244Z",
        "outcome_amount": 0.00612345,
        "outcome_currency": "eth",
    }
    body.update(overrides)
    return body


def post_ipn(http: HttpClient, body: dict[str, Any] | bytes | str, *, signature: str | None = "sign") -> Any:
    """POST an IPN; by default signed correctly with the test secret."""
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {}
    if signature == "sign":
        headers["HTTP_X_NOWPAYMENTS_SIG"] = sign(raw, settings.NOWPAYMENTS_IPN_SECRET)
    elif signature is not None:
        headers["HTTP_X_NOWPAYMENTS_SIG"] = signature
    return http.post(IPN_URL, data=raw, content_type="application/json", **headers)


@pytest.fixture
def threshold_client(db: None) -> Client:
    return Client.objects.create(
        external_id="-1001234567890",
        name="Threshold channel",
        payout_strategy=PayoutStrategy.THRESHOLD,
        payout_threshold_usd=Decimal("50.00"),
        payout_currency=PayoutCurrency.USDT,
        payout_network="eth",
        wallet_address=WALLET,
    )


def worker_environment() -> dict[str, str]:
    """Environment for a child process that must see this test session's database and queue."""
    db = settings.DATABASES["default"]
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="pgp_project.settings.test",
        DATABASE_URL=f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
    )
    return env


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup: None, django_db_blocker: Any) -> Iterator[subprocess.Popen]:
    """A real `celery worker` on Redis and the test database, for the whole session."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "pgp_project",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=pytest-{os.getpid()}@%h",
        ],
        cwd=PROJECT_ROOT,
        env=worker_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    output: list[str] = []
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if " ready." in line:
            break
    else:
        process.kill()
    if process.poll() is not None or not any(" ready." in line for line in output):
        process.kill()
        pytest.fail("celery worker did not start:\n" + "".join(output[-40:]))
    # Keep draining its output so the pipe never fills and blocks the worker.
    drain = subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL)
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    drain.wait(timeout=5)


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
