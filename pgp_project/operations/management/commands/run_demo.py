"""The embedded main job: web + admin, a Celery worker, Beat and Flower in one foreground command.

Runs on whatever DATABASE_URL / CELERY_BROKER_URL say (by default SQLite and the kombu
filesystem broker, so a fresh machine needs no server). Ctrl-C (or SIGTERM) stops every process
and waits for it; if any process dies, the others are stopped too and the command fails.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from pgp_project.operations.demo import (
    DEMO_ADMIN_USERNAME,
    apply_demo_intervals,
    ensure_demo_clients,
    reset_demo_admin,
)

STOP_GRACE_SECONDS = 20


@dataclass
class Child:
    name: str
    process: subprocess.Popen


class Command(BaseCommand):
    help = "Run web, worker, Beat and Flower together for a local demo (Ctrl-C stops all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--web-port", type=int, default=int(os.environ.get("PGP_WEB_PORT", 8000)))
        parser.add_argument("--flower-port", type=int, default=int(os.environ.get("PGP_FLOWER_PORT", 5555)))
        parser.add_argument(
            "--keep-schedule", action="store_true", help="Keep the stored Beat intervals instead of demo ones."
        )

    def handle(self, *args: object, web_port: int, flower_port: int, keep_schedule: bool, **options: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        with transaction.atomic():
            password = reset_demo_admin()
            ensure_demo_clients()
            if not keep_schedule:
                apply_demo_intervals()

        self._stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)

        python = sys.executable
        celery = [python, "-m", "celery", "-A", "pgp_project"]
        children = [
            self._start("web", [python, "manage.py", "runserver", f"127.0.0.1:{web_port}", "--noreload"]),
            self._start("worker", [*celery, "worker", "--loglevel=INFO", "--concurrency=2", "--hostname=demo@%h"]),
            self._start("beat", [*celery, "beat", "--loglevel=INFO", "--pidfile="]),
            self._start("flower", [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"]),
        ]
        self.stdout.write(
            self.style.SUCCESS(
                f"\nPGP demo running (Ctrl-C stops it)\n"
                f"  admin:  http://127.0.0.1:{web_port}/admin/  user {DEMO_ADMIN_USERNAME} password {password}\n"
                f"  health: http://127.0.0.1:{web_port}/health/\n"
                f"  flower: http://127.0.0.1:{flower_port}/\n"
            )
        )
        failed = self._supervise(children)
        killed = self._stop_all(children)
        if failed:
            raise CommandError(f"{failed} exited unexpectedly; stopped the others")
        if killed:
            raise CommandError(f"had to kill {', '.join(killed)} after {STOP_GRACE_SECONDS}s")
        self.stdout.write("PGP demo stopped cleanly.")

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _start(self, name: str, command: list[str]) -> Child:
        # Own session: a terminal Ctrl-C reaches only us, and we stop each child exactly once.
        process = subprocess.Popen(command, start_new_session=True, env=os.environ.copy())
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
        for child in children:
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
