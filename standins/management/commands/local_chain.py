"""`manage.py local_chain`: run anvil with TestUSDT deployed, in the foreground, until stopped."""

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from standins.localchain import (
    DEFAULT_CHAIN_ID,
    LOCAL_CHAIN_STATE_FILE,
    LocalChainError,
    deploy_local_chain,
    start_anvil,
    stop_anvil,
)


class Command(BaseCommand):
    help = (
        "Start anvil on loopback, deploy TestUSDT, fund the hot wallet and the sandbox treasury, print the "
        "environment lines and write local_chain.json; stops anvil on Ctrl-C or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8545)
        parser.add_argument(
            "--block-time",
            type=float,
            default=None,
            help="seconds between blocks; default: one block per transaction (confirmations then only "
            "advance with new transactions)",
        )
        parser.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID)
        parser.add_argument("--state-dir", type=Path, default=None, help="where local_chain.json goes (VAR_DIR)")

    def handle(self, *args: Any, **options: Any) -> None:
        state_dir: Path = options["state_dir"] or Path(settings.VAR_DIR)
        state_dir.mkdir(parents=True, exist_ok=True)
        state_file = state_dir / LOCAL_CHAIN_STATE_FILE
        stop_requested = threading.Event()
        previous_handlers = _on_stop_signals(stop_requested)
        try:
            anvil = start_anvil(
                options["port"],
                block_time=options["block_time"],
                chain_id=options["chain_id"],
                log_path=state_dir / "anvil.log",
            )
        except LocalChainError as error:
            _restore(previous_handlers)
            raise CommandError(str(error)) from error
        try:
            chain = deploy_local_chain(f"http://127.0.0.1:{options['port']}")
            chain.write_json(state_file)
            # These are anvil's public dev keys (play money), printed so the demo can export them.
            for line in chain.env_lines():
                self.stdout.write(line)
            self.stdout.write(f"LOCAL_CHAIN_STATE={state_file}")
            self.stdout.write(f"anvil running (log: {state_dir / 'anvil.log'}); Ctrl-C to stop", self.style.SUCCESS)
            self.stdout.flush()
            while not stop_requested.wait(0.5):
                if anvil.poll() is not None:
                    raise CommandError(f"anvil exited unexpectedly with code {anvil.returncode}")
        except LocalChainError as error:
            raise CommandError(str(error)) from error
        finally:
            stop_anvil(anvil)
            state_file.unlink(missing_ok=True)  # a stale file would point the sandbox at a dead chain
            _restore(previous_handlers)
        self.stdout.write("anvil stopped")


def _on_stop_signals(stop_requested: threading.Event) -> dict[int, Any]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous_handlers: dict[int, Any]) -> None:
    for signum, handler in previous_handlers.items():
        signal.signal(signum, handler)
