"""`manage.py sandbox_changenow`: the sandbox ChangeNOW API on loopback, in the foreground."""

import argparse
import os
import signal
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgp_project.operations.environment_secrets import secret_from_environment
from standins.localchain import LOCAL_CHAIN_STATE_FILE, LocalChain
from standins.sandbox_changenow import LifecycleTiming, SandboxChangeNow, SandboxConfig


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as error:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from error
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number: {text}")
    return value


class Command(BaseCommand):
    help = (
        "Serve the sandbox ChangeNOW API v2 on loopback against the local chain. Chain settings default to "
        "the local_chain.json that `manage.py local_chain` writes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
        parser.add_argument("--port", type=int, default=8701)
        parser.add_argument("--rpc-url", default=None)
        parser.add_argument("--usdt-address", default=None)
        parser.add_argument(
            "--treasury-key",
            default=None,
            help="private key paying out exchanges; default $SANDBOX_TREASURY_PRIVATE_KEY, then local_chain.json",
        )
        parser.add_argument("--api-key", default=None, help="key clients must send; default $CHANGENOW_API_KEY")
        parser.add_argument("--eth-usd", type=_decimal, default=Decimal("3000"))
        parser.add_argument("--fee-percent", type=_decimal, default=Decimal("0.5"))
        parser.add_argument("--min-amount-usd", type=_decimal, default=Decimal("5"))
        parser.add_argument("--max-amount-usd", type=_decimal, default=Decimal("100000000"))
        parser.add_argument("--step-delay", type=float, default=0.5, help="seconds in each status after the deposit")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between chain polls")
        parser.add_argument("--confirmations", type=int, default=1, help="blocks a deposit needs (1 = its own)")
        parser.add_argument("--state-dir", type=Path, default=None, help="where local_chain.json is (VAR_DIR)")

    def handle(self, *args: Any, **options: Any) -> None:
        chain = _local_chain_state(options["state_dir"] or Path(settings.VAR_DIR))
        rpc_url = options["rpc_url"] or (chain.rpc_url if chain else None)
        usdt_address = options["usdt_address"] or (chain.usdt_address if chain else None)
        treasury_key = (
            options["treasury_key"]
            or os.environ.get("SANDBOX_TREASURY_PRIVATE_KEY")
            or (chain.treasury_private_key if chain else None)
        )
        api_key = options["api_key"] or secret_from_environment("CHANGENOW_API_KEY")
        missing = [
            name
            for name, value in (
                ("--rpc-url", rpc_url),
                ("--usdt-address", usdt_address),
                ("--treasury-key", treasury_key),
                ("--api-key", api_key),
            )
            if not value
        ]
        if missing:
            raise CommandError(f"missing {', '.join(missing)} (start `manage.py local_chain` first, or pass them)")
        config = SandboxConfig(
            rpc_url=str(rpc_url),
            usdt_address=str(usdt_address),
            treasury_private_key=str(treasury_key),
            api_key=str(api_key),
            eth_usd=options["eth_usd"],
            fee_percent=options["fee_percent"],
            min_amount_usd=options["min_amount_usd"],
            max_amount_usd=options["max_amount_usd"],
            timing=LifecycleTiming(
                step_delay_seconds=options["step_delay"],
                poll_interval_seconds=options["poll_interval"],
                deposit_confirmations=options["confirmations"],
            ),
        )
        sandbox = SandboxChangeNow(config, host=options["host"], port=options["port"])
        stop_requested = threading.Event()
        previous_handlers = _on_stop_signals(stop_requested)
        try:
            try:
                base_url = sandbox.start()
            except Exception as error:  # any start-up failure (chain down, port taken) is reported the same way
                raise CommandError(f"sandbox did not start: {error}") from error
            self.stdout.write(f"CHANGENOW_API_URL={base_url}")
            self.stdout.write(f"sandbox ChangeNOW running on {base_url}; Ctrl-C to stop", self.style.SUCCESS)
            self.stdout.flush()
            while not stop_requested.wait(0.5):  # a timed wait keeps signal handling prompt
                pass
        finally:
            sandbox.stop()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        self.stdout.write("sandbox stopped")


def _local_chain_state(state_dir: Path) -> LocalChain | None:
    state_file = state_dir / LOCAL_CHAIN_STATE_FILE
    return LocalChain.read_json(state_file) if state_file.exists() else None


def _on_stop_signals(stop_requested: threading.Event) -> dict[int, Any]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
