"""The embedded main job: web + admin, a Celery worker, Beat and Flower in one foreground command,
with the local stand-ins (two anvil chains with TestUSDT, the second playing Polygon; the sandbox
ChangeNOW) and a payment simulator posting signed IPNs, so conversions complete on their own within
a couple of minutes, and one client is paid in USDT straight from our wallet on the second chain.

Runs on whatever DATABASE_URL / CELERY_BROKER_URL say; by default on a PostgreSQL server of its
own under var/ (standins/local_postgres.py), started here first and stopped here last, and the
kombu filesystem broker, so a fresh machine needs no server. Ctrl-C (or SIGTERM) stops every
process and waits for it; if any process dies, the others are stopped too and the command fails.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction

from standins import local_postgres
from standins.demo import (
    DEMO_ADMIN_USERNAME,
    SECOND_CHAIN,
    SECOND_CHAIN_ID,
    SECOND_CHAIN_RPC_URL_ENV,
    SECOND_CHAIN_USDT_ENV,
    apply_demo_intervals,
    ensure_demo_clients,
    fresh_demo_api_key,
    reset_demo_admin,
    with_second_chain,
)
from standins.demo_webhooks import demo_receiver_url, ensure_demo_webhook
from standins.localchain import LOCAL_CHAIN_STATE_FILE, LocalChain

STOP_GRACE_SECONDS = 20
CHAIN_START_TIMEOUT_SECONDS = 90
DEMO_CHANGENOW_API_KEY = "demo-changenow-key"
DEMO_FLOWER_USERNAME = "flower"
MANAGE = [sys.executable, "manage.py"]
CELERY = [sys.executable, "-m", "celery", "-A", "pgp_project"]
# Faster polling than production so the demo shows results in minutes.
DEMO_FLOW_ENV = {"PGP_CHAIN_POLL_SECONDS": "2", "PGP_EXCHANGE_POLL_SECONDS": "3"}


@dataclass
class Child:
    name: str
    process: subprocess.Popen


class Command(BaseCommand):
    help = "Run web, worker, Beat, Flower, anvil, the sandbox ChangeNOW and a payment simulator (Ctrl-C stops all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--web-port", type=int, default=int(os.environ.get("PGP_WEB_PORT", 8000)))
        parser.add_argument("--flower-port", type=int, default=int(os.environ.get("PGP_FLOWER_PORT", 5555)))
        parser.add_argument("--chain-port", type=int, default=int(os.environ.get("PGP_CHAIN_PORT", 8545)))
        parser.add_argument("--second-chain-port", type=int, default=int(os.environ.get("PGP_SECOND_CHAIN_PORT", 8546)))
        parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("PGP_SANDBOX_PORT", 8701)))
        parser.add_argument("--webhook-port", type=int, default=int(os.environ.get("PGP_WEBHOOK_RECEIVER_PORT", 8702)))
        parser.add_argument("--payment-interval", type=float, default=4.0, help="seconds between simulated payments")
        parser.add_argument(
            "--keep-schedule", action="store_true", help="Keep the stored Beat intervals instead of demo ones."
        )

    def handle(self, *args: object, **options: Any) -> None:
        refuse_busy_ports(options)  # before anything is reset, started or printed
        self._stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        self._database: local_postgres.LocalPostgres | None = None
        self._database_env: dict[str, str] = {}
        try:
            failed, killed = self._run(options)
        finally:
            self._stop_database()
        if failed:
            raise CommandError(f"{failed} exited unexpectedly; stopped the others")
        if killed:
            raise CommandError(f"had to kill {', '.join(killed)} after {STOP_GRACE_SECONDS}s")
        self.stdout.write("PGP demo stopped cleanly.")

    def _run(self, options: dict[str, Any]) -> tuple[str | None, list[str]]:
        self._start_database()
        self._reset_embedded_state()
        call_command("migrate", interactive=False, verbosity=0)
        with transaction.atomic():
            password = reset_demo_admin()
            self._api_key = fresh_demo_api_key()
            ensure_demo_clients()
            # A receiver that verifies and prints every webhook, and its endpoint (fresh secret).
            self._webhook_secret = ensure_demo_webhook(demo_receiver_url(options["webhook_port"]))
            if not options["keep_schedule"]:
                apply_demo_intervals()
        # Flower is never open, not even the demo's: a fresh password each run, in the banner.
        self._flower_auth = f"{DEMO_FLOWER_USERNAME}:{secrets.token_urlsafe(12)}"
        children: list[Child] = []
        try:
            chain, second = self._start_chains(children, options)
            self._start_system(children, options, self._flow_environment(chain, second, options))
            self._print_banner(options, chain, second, password)
            self._print_intervals()
            failed = self._supervise(children)
        finally:
            killed = self._stop_all(children)
        return failed, killed

    def _start_database(self) -> None:
        """The demo's own PostgreSQL server, when no DATABASE_URL names another: started (or a
        killed demo's reused) before anything connects; every child is handed its URL."""
        data_dir = settings.PGP_EMBEDDED_POSTGRES_DIR
        if data_dir is None:
            return
        started = time.monotonic()
        self._database = local_postgres.start(Path(data_dir))
        expected = settings.DATABASES["default"]["OPTIONS"]["host"]
        if str(self._database.socket_dir()) != expected:  # the package moves a socket path too long for unix
            raise CommandError(
                f"the demo's PostgreSQL socket is in {self._database.socket_dir()}, not {expected}: "
                "set PGP_VAR_DIR to a shorter path"
            )
        self._database_env = {"DATABASE_URL": self._database.uri(local_postgres.DEMO_DATABASE)}
        self.stdout.write(
            f"PostgreSQL (embedded) running in {data_dir}, pid {self._database.pid}, "
            f"ready in {time.monotonic() - started:.1f}s"
        )

    def _stop_database(self) -> None:
        """Last, after every child: our own connections first, then the server."""
        connections.close_all()
        if self._database is not None:
            self._database.stop()
            self.stdout.write("PostgreSQL (embedded) stopped.")

    def _start_chains(self, children: list[Child], options: dict[str, Any]) -> tuple[LocalChain, LocalChain]:
        """Both local chains, started together: the first (the conversions' and the exchange's)
        and the second, Polygon's stand-in, each with its own TestUSDT and state file."""
        first_args = [f"--port={options['chain_port']}", "--block-time=1", f"--state-dir={settings.VAR_DIR}"]
        second_args = [
            f"--port={options['second_chain_port']}",
            "--block-time=1",
            f"--chain-id={SECOND_CHAIN_ID}",
            f"--state-dir={self._second_chain_dir()}",
        ]
        children.append(self._start("chain", [*MANAGE, "local_chain", *first_args]))
        children.append(self._start(f"chain {SECOND_CHAIN}", [*MANAGE, "local_chain", *second_args]))
        return (
            self._wait_for_chain(children[-2], Path(settings.VAR_DIR)),
            self._wait_for_chain(children[-1], self._second_chain_dir()),
        )

    @staticmethod
    def _second_chain_dir() -> Path:
        return Path(settings.VAR_DIR) / SECOND_CHAIN

    @staticmethod
    def _flow_environment(chain: LocalChain, second: LocalChain, options: dict[str, Any]) -> dict[str, str]:
        """What web, worker and Beat need to reach both local chains and the sandbox ChangeNOW.
        The second chain is one more PGP_CHAINS entry; its node and token come from variables."""
        return {
            "ETH_RPC_URL": chain.rpc_url,
            "ETH_CHAIN_ID": str(chain.chain_id),
            "HOT_WALLET_PRIVATE_KEY": chain.hot_wallet_private_key,
            "USDT_CONTRACT_ADDRESS": chain.usdt_address,
            "PGP_CHAINS": json.dumps(with_second_chain(settings.PGP_CHAINS)),
            SECOND_CHAIN_RPC_URL_ENV: second.rpc_url,
            SECOND_CHAIN_USDT_ENV: second.usdt_address,
            "CHANGENOW_API_URL": f"http://127.0.0.1:{options['sandbox_port']}",
            "CHANGENOW_API_KEY": DEMO_CHANGENOW_API_KEY,
            **DEMO_FLOW_ENV,
        }

    def _start_system(self, children: list[Child], options: dict[str, Any], flow_env: dict[str, str]) -> None:
        web_port = options["web_port"]
        sandbox_args = [f"--port={options['sandbox_port']}", f"--api-key={DEMO_CHANGENOW_API_KEY}"]
        ipn_url = f"http://127.0.0.1:{web_port}/webhooks/nowpayments/"
        children += [
            self._start("sandbox", [*MANAGE, "sandbox_changenow", *sandbox_args, f"--state-dir={settings.VAR_DIR}"]),
            self._start("web", [*MANAGE, "runserver", f"127.0.0.1:{web_port}", "--noreload"], flow_env),
            self._start(
                "worker", [*CELERY, "worker", "--loglevel=INFO", "--concurrency=2", "--hostname=demo@%h"], flow_env
            ),
            self._start("beat", [*CELERY, "beat", "--loglevel=INFO", "--pidfile="], flow_env),
            self._start(
                "flower",
                [*CELERY, "flower", f"--port={options['flower_port']}", "--address=127.0.0.1"],
                {"FLOWER_BASIC_AUTH": self._flower_auth},
            ),
            self._start(
                "webhooks",
                [sys.executable, "-m", "standins.webhook_receiver", f"--port={options['webhook_port']}"],
                {"PGP_DEMO_WEBHOOK_SECRET": self._webhook_secret},
            ),
            self._start(
                "payments",
                [
                    *MANAGE,
                    "simulate_payments",
                    f"--url={ipn_url}",
                    f"--interval={options['payment_interval']}",
                    "--redeposit-every=10",  # a repeated deposit now and then, credited by its value
                ],
            ),
        ]

    def _print_banner(self, options: dict[str, Any], chain: LocalChain, second: LocalChain, password: str) -> None:
        web = f"http://127.0.0.1:{options['web_port']}"
        flower_user, _, flower_password = self._flower_auth.partition(":")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nPGP demo running (Ctrl-C stops it)\n"
                f"  admin:  {web}/admin/  user {DEMO_ADMIN_USERNAME} password {password}\n"
                f"  health: {web}/health/\n"
                f"  API:    {web}/api/v1/docs/  key {self._api_key}\n"
                f"          curl -H 'Authorization: Api-Key {self._api_key}' {web}/api/v1/clients/\n"
                f"  flower: http://127.0.0.1:{options['flower_port']}/  user {flower_user} password {flower_password}\n"
                f"  chain:  {chain.rpc_url} (anvil, TestUSDT {chain.usdt_address})\n"
                f"  chain {SECOND_CHAIN}: {second.rpc_url} (anvil, chain id {second.chain_id}, TestUSDT "
                f"{second.usdt_address})\n"
                f"  ChangeNOW sandbox: http://127.0.0.1:{options['sandbox_port']}/\n"
                f"  webhooks: {demo_receiver_url(options['webhook_port'])} (prints each verified event)\n"
            )
        )

    def _print_intervals(self) -> None:
        """The pacing actually in use: the stored Beat schedule (demo intervals or, with
        --keep-schedule, whatever is stored) and the flow's polling, as the children see it."""
        lines = [f"  {task.name}: every {describe_schedule(task)}" for task in scheduled_jobs()]
        polls = ", ".join(f"{name}={value}s" for name, value in DEMO_FLOW_ENV.items())
        self.stdout.write("Periodic jobs (Beat):\n" + "\n".join(lines) + f"\nFlow polling: {polls}\n")

    def _reset_embedded_state(self) -> None:
        """Each demo starts a new chain, so on the embedded default it also starts a new database
        and broker: balances, nonces and exchanges of an old run would not match the new chain."""
        if self._database is None:
            return
        self._database.recreate_database(local_postgres.DEMO_DATABASE)
        (Path(settings.VAR_DIR) / LOCAL_CHAIN_STATE_FILE).unlink(missing_ok=True)
        (self._second_chain_dir() / LOCAL_CHAIN_STATE_FILE).unlink(missing_ok=True)
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            for key in ("data_folder_in", "control_folder", "processed_folder"):
                folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key])
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"Fresh demo state in {settings.VAR_DIR}")

    def _wait_for_chain(self, chain_child: Child, state_dir: Path) -> LocalChain:
        state_file = state_dir / LOCAL_CHAIN_STATE_FILE
        deadline = time.monotonic() + CHAIN_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self._stopping:
            if chain_child.process.poll() is not None:
                raise CommandError("the local chain failed to start (is `npm ci` done?)")
            if state_file.exists():
                return LocalChain.read_json(state_file)
            time.sleep(0.5)
        raise CommandError("the local chain did not come up in time")

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _start(self, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> Child:
        # Own session: a terminal Ctrl-C reaches only us, and we stop each child exactly once.
        # Our own settings module, named: the entry points' default is production.
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            **self._database_env,
            **(extra_env or {}),
        }
        process = subprocess.Popen(command, start_new_session=True, env=env)
        return Child(name, process)

    def _supervise(self, children: list[Child]) -> str | None:
        while not self._stopping:
            for child in children:
                if child.process.poll() is not None:
                    return child.name
            time.sleep(0.5)
        return None

    def _stop_all(self, children: list[Child]) -> list[str]:
        killed = []
        # Stop the traffic first and the chain last, so nothing in flight loses its peer early.
        for child in reversed(children):
            if child.process.poll() is None:
                # The main process only: a Celery worker stops its own pool (warm shutdown).
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{child.name} did not stop in {STOP_GRACE_SECONDS}s; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
                killed.append(child.name)
        return killed


PORT_SETTINGS = {
    "web_port": "PGP_WEB_PORT",
    "flower_port": "PGP_FLOWER_PORT",
    "chain_port": "PGP_CHAIN_PORT",
    "second_chain_port": "PGP_SECOND_CHAIN_PORT",
    "sandbox_port": "PGP_SANDBOX_PORT",
    "webhook_port": "PGP_WEBHOOK_RECEIVER_PORT",
}


def refuse_busy_ports(options: dict[str, Any]) -> None:
    """Every port the demo listens on must be free: say which is not, and how to choose another,
    before the banner and the admin password are printed and before the demo state is reset."""
    busy = []
    for option, variable in PORT_SETTINGS.items():
        port = options[option]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(f"{option.removesuffix('_port')} port {port} is in use (set {variable} to another)")
    if busy:
        raise CommandError("; ".join(busy))


def scheduled_jobs() -> list[Any]:
    from django_celery_beat.models import PeriodicTask

    return list(PeriodicTask.objects.filter(enabled=True).select_related("interval").order_by("name"))


def describe_schedule(task: Any) -> str:
    return f"{task.interval.every} {task.interval.period}" if task.interval else str(task.schedule)
