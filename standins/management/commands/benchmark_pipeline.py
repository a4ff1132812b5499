"""Benchmark: 1,000 signed IPNs to a completed, distributed conversion on the local chain, with
1, 2 and 4 Celery worker processes. Not a test: prints figures.

    createdb -h 127.0.0.1 -U postgres pgp_bench
    DJANGO_SETTINGS_MODULE=pgp_project.settings.local \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pgp_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python manage.py benchmark_pipeline --ipns 1000 --workers 1,2,4

(`CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/<vhost>` runs it on RabbitMQ.)

What runs, all real processes on loopback: anvil mining a block per transaction, the sandbox
ChangeNOW with its delays at their minimum (0 s in each of confirming/exchanging/sending, its
chain watcher polling every 0.05 s, the deposit's own block enough), gunicorn with the committed
gunicorn.conf.py, and N `celery worker` nodes of one process each (--concurrency=1) on a queue
private to this run. Runtime settings: one confirmation, a 1 USD micro-batch threshold; the flows
poll the chain and the exchange every 0.1 s.

The pipeline time runs from the first IPN sent to the conversion `completed` with every row
credited (read from the database): intake (the IPNs posted concurrently over HTTP), then the
conversion check sent through the broker as Beat would send it, then the conversion's chain of
steps in the workers. The database is wiped first (its name must contain "bench"); at the end
every process started here is stopped and this run's queue deleted, so no message is left.
"""

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from celery import current_app
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Q, Sum

from batching.conversion import CHECK_THRESHOLD_TASK
from batching.models import BatchConversion
from integrations.nowpayments_signature import sign
from payments.models import AccumulationStatus, Client, PayoutAccumulation
from payouts.exchange_batches.states import BatchStatus
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.selectors import get_runtime_settings
from standins.localchain import LocalChain, deploy_local_chain, free_port, start_anvil, stop_anvil
from standins.queues import remove_queue
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig

PROJECT_ROOT = Path(settings.BASE_DIR)
CLIENT_ID = "-100pipeline"
API_KEY = "bench-changenow-key"
POLL_SECONDS = "0.1"
# The sandbox's delays at their minimum: no time spent in each exchange state, a fast watcher.
MINIMUM_TIMING = LifecycleTiming(step_delay_seconds=0.0, poll_interval_seconds=0.05, deposit_confirmations=1)
FINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED, BatchStatus.REFUNDED)


@dataclass
class RunResult:
    workers: int
    intake: float
    conversion: float
    pipeline: float
    retried: int
    loadavg: str


class Command(BaseCommand):
    help = "Time N signed IPNs to a completed, distributed conversion with 1, 2 and 4 worker processes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ipns", type=int, default=1000)
        parser.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
        parser.add_argument("--senders", type=int, default=16, help="concurrent HTTP senders (gunicorn's threads)")
        parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for one conversion")

    def handle(self, *args: object, ipns: int, workers: str, senders: int, timeout: float, **options: Any) -> None:
        if "bench" not in connection.settings_dict["NAME"]:
            raise CommandError("run against a database whose name contains 'bench' (its data is wiped)")
        counts = [int(n) for n in workers.split(",")]
        self.queue = f"pgp-bench-{os.getpid()}"
        self.secret = secrets.token_urlsafe(32)
        self.logs = Path(tempfile.mkdtemp(prefix="pgp-bench-"))
        logging.getLogger("standins.sandbox_changenow").setLevel(logging.WARNING)  # one line per request
        call_command("migrate", verbosity=0)
        call_command("flush", interactive=False, verbosity=0)  # the chain is new: so is the database
        chain_port = free_port()
        anvil = start_anvil(chain_port, block_time=None)  # one block per transaction
        sandbox: SandboxChangeNow | None = None
        web: subprocess.Popen[bytes] | None = None
        results: list[RunResult] = []
        try:
            chain = deploy_local_chain(f"http://127.0.0.1:{chain_port}")
            sandbox = SandboxChangeNow(
                SandboxConfig(
                    rpc_url=chain.rpc_url,
                    usdt_address=chain.usdt_address,
                    treasury_private_key=chain.treasury_private_key,
                    api_key=API_KEY,
                    timing=MINIMUM_TIMING,
                )
            )
            sandbox.start()
            self.env = self._environment(chain, sandbox.base_url)
            self._prepare()
            web_port = free_port()
            web = self._start_web(web_port)
            url = f"http://127.0.0.1:{web_port}/webhooks/nowpayments/"
            for index, count in enumerate(counts):
                results.append(self._run(index, count, ipns, url, senders, timeout))
                self._report(results[-1], ipns)
        finally:
            if web is not None:
                _stop(web)
            if sandbox is not None:
                sandbox.stop()
            stop_anvil(anvil)
            remove_queue(settings.CELERY_BROKER_URL, self.queue)  # the workers are stopped: no message is left
        self.stdout.write(f"broker {settings.CELERY_BROKER_URL.partition('://')[0]}, {ipns} IPNs, logs in {self.logs}")
        self.stdout.write("workers  intake s  IPN/s  conversion s  pipeline s  pipeline IPN/s  loadavg")
        for r in results:
            self.stdout.write(
                f"{r.workers:>7}  {r.intake:>8.2f}  {ipns / r.intake:>5.0f}  {r.conversion:>12.2f}  "
                f"{r.pipeline:>10.2f}  {ipns / r.pipeline:>14.0f}  {r.loadavg}"
            )

    # --- set-up ------------------------------------------------------------------------------

    def _environment(self, chain: LocalChain, sandbox_url: str) -> dict[str, str]:
        db = connection.settings_dict
        credentials = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pgp_project.settings.local",
            "DJANGO_DEBUG": "false",  # DEBUG would keep every query in memory
            "DATABASE_URL": f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "NOWPAYMENTS_IPN_SECRET": self.secret,
            "ETH_RPC_URL": chain.rpc_url,
            "ETH_CHAIN_ID": str(chain.chain_id),
            "HOT_WALLET_PRIVATE_KEY": chain.hot_wallet_private_key,
            "USDT_CONTRACT_ADDRESS": chain.usdt_address,
            "CHANGENOW_API_URL": sandbox_url,
            "CHANGENOW_API_KEY": API_KEY,
            "PGP_CHAIN_POLL_SECONDS": POLL_SECONDS,
            "PGP_EXCHANGE_POLL_SECONDS": POLL_SECONDS,
            "ETH_CONFIRMATIONS": "1",
        }

    def _prepare(self) -> None:
        runtime = get_runtime_settings()
        runtime.micro_batch_threshold_usd = Decimal("1.00")
        runtime.save()
        Client.objects.create(
            external_id=CLIENT_ID,
            name="Pipeline benchmark",
            payout_strategy="threshold",
            payout_threshold_usd=Decimal("100000000"),  # credited, never paid out here
            payout_currency="usdt",
            payout_network="eth",
            wallet_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        )

    def _start_web(self, port: int) -> subprocess.Popen[bytes]:
        web = _spawn(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "pgp_project.wsgi"],
            {**self.env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            self.logs / "gunicorn.log",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                requests.get(f"http://127.0.0.1:{port}/health/", timeout=2)
                return web
            if web.poll() is not None:
                break
            time.sleep(0.2)
        _stop(web)
        raise CommandError(f"gunicorn did not start: see {self.logs / 'gunicorn.log'}")

    def _start_workers(self, count: int, run: int) -> list[subprocess.Popen[bytes]]:
        started = []
        for index in range(count):
            log = self.logs / f"worker-{run}-{index}.log"
            argv = [sys.executable, "-m", "celery", "-A", "pgp_project", "worker", "--loglevel=INFO"]
            argv += ["--concurrency=1", "--pool=prefork", "--without-gossip", "--without-mingle"]
            argv += [f"--hostname=bench-{os.getpid()}-{run}-{index}@%h"]
            started.append(_spawn(argv, self.env, log))
        deadline = time.monotonic() + 90
        for index, worker in enumerate(started):
            log = self.logs / f"worker-{run}-{index}.log"
            while " ready." not in log.read_text(errors="replace"):
                if worker.poll() is not None or time.monotonic() > deadline:
                    for other in started:
                        _stop(other)
                    raise CommandError(f"celery worker did not start: see {log}")
                time.sleep(0.1)
        return started

    # --- one run -----------------------------------------------------------------------------

    def _run(self, run: int, count: int, ipns: int, url: str, senders: int, timeout: float) -> RunResult:
        bodies = [_signed_ipn(self.secret, (run + 1) * 1_000_000 + n, n) for n in range(ipns)]
        last_conversion = BatchConversion.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        workers = self._start_workers(count, run)
        try:
            started = time.perf_counter()
            retried = _post_all(url, bodies, senders)
            intake_done = time.perf_counter()
            # What Beat does at its next tick: the conversion check, through the broker.
            current_app.send_task(CHECK_THRESHOLD_TASK, queue=self.queue)
            conversion = self._wait_completed(last_conversion, ipns, timeout)
            finished = time.perf_counter()
        finally:
            for worker in workers:
                _stop(worker)
        self._check(conversion, ipns)
        self._timeline(conversion)
        return RunResult(
            workers=count,
            intake=intake_done - started,
            conversion=finished - intake_done,
            pipeline=finished - started,
            retried=retried,
            loadavg=_loadavg(),
        )

    def _wait_completed(self, after_pk: int, ipns: int, timeout: float) -> BatchConversion:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conversion = BatchConversion.objects.filter(pk__gt=after_pk, status__in=FINAL).first()
            if conversion is not None:
                if conversion.status != BatchStatus.COMPLETED:
                    raise CommandError(
                        f"conversion #{conversion.pk} ended {conversion.status}: {conversion.review_reason}"
                    )
                return conversion
            time.sleep(0.02)
        raise CommandError(f"no conversion completed within {timeout}s; worker logs in {self.logs}")

    @staticmethod
    def _check(conversion: BatchConversion, ipns: int) -> None:
        """Every row credited, and the parts sum to what the exchange paid."""
        rows = PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk)
        credited = rows.filter(status=AccumulationStatus.CONVERTED, credit_usdt__isnull=False).count()
        totals = rows.aggregate(credit=Sum("credit_usdt"), fee=Sum("fee_usdt"))
        if conversion.row_count != ipns or credited != ipns:
            raise CommandError(f"conversion #{conversion.pk}: {credited} of {ipns} rows credited")
        if totals["credit"] + totals["fee"] != conversion.received_usdt:
            raise CommandError(f"conversion #{conversion.pk}: parts do not sum to {conversion.received_usdt}")

    def _timeline(self, conversion: BatchConversion) -> None:
        """The conversion's steps, one after the other, from its audit events (ms after it was created)."""
        events = AuditEvent.objects.filter(
            Q(subject_type="conversion", subject_id=conversion.pk)
            | Q(subject_type="host_payment", subject_id=conversion.host_payment_id)
        ).order_by("created_at", "id")
        start = conversion.created_at
        steps = [f"{e.subject_type} {e.to_status} +{(e.created_at - start).total_seconds() * 1000:.0f}" for e in events]
        self.stdout.write(f"  conversion #{conversion.pk}: " + ", ".join(steps))

    def _report(self, result: RunResult, ipns: int) -> None:
        self.stdout.write(
            f"workers={result.workers}: intake {result.intake:.2f}s ({ipns / result.intake:.0f} IPN/s, "
            f"{result.retried} retried), conversion {result.conversion:.2f}s, pipeline {result.pipeline:.2f}s "
            f"({ipns / result.pipeline:.0f} IPN/s), loadavg {result.loadavg}"
        )


def _signed_ipn(secret: str, payment_id: int, n: int) -> tuple[bytes, str]:
    price = Decimal(10 + n % 7) + Decimal("0.49")
    eth = (Decimal("0.0031") + Decimal(n % 50) * Decimal("0.000017")).quantize(Decimal("0.00000001"))
    body = {
        "payment_id": payment_id,
        "payment_status": "finished",
        "pay_address": "0xd1cDE08A07cD25adEbEd35c3867a59228C09B606",
        "price_amount": str(price),
        "price_currency": "usd",
        "pay_amount": str(eth),
        "actually_paid": str(eth),
        "pay_currency": "eth",
        "order_id": f"PGP-1|{CLIENT_ID}",
        "order_description": "Pipeline benchmark",
        "outcome_amount": str(eth),
        "outcome_currency": "eth",
    }
    raw = json.dumps(body).encode()
    return raw, sign(raw, secret)


def _post_all(url: str, bodies: list[tuple[bytes, str]], senders: int) -> int:
    """POST every IPN, `senders` at a time; a refused or failed one is sent again, as
    NOWPayments would (quickly here). Returns how many were sent again."""
    local = threading.local()
    retried = 0
    lock = threading.Lock()

    def post(item: tuple[bytes, str]) -> None:
        nonlocal retried
        raw, signature = item
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        headers = {"Content-Type": "application/json", "x-nowpayments-sig": signature}
        for _ in range(50):
            try:
                if session.post(url, data=raw, headers=headers, timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            with lock:
                retried += 1
            time.sleep(0.05)
        raise CommandError("an IPN was refused 50 times")

    with ThreadPoolExecutor(max_workers=senders) as pool:
        list(pool.map(post, bodies))
    return retried


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "n/a"


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM the process (a warm shutdown: a worker hands back what it holds), then SIGKILL
    whatever of its process group lingers."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
