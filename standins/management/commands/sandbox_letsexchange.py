"""`manage.py sandbox_letsexchange`: the sandbox LetsExchange API on loopback, in the foreground."""

import os
import signal
import threading
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from standins.localchain import LOCAL_CHAIN_STATE_FILE, LocalChain
from standins.management.commands.sandbox_changenow import _decimal
from standins.sandbox_changenow import LifecycleTiming
from standins.sandbox_letsexchange import LetsExchangeSandboxConfig, SandboxLetsExchange


class Command(BaseCommand):
    help = (
        "Serve the sandbox LetsExchange API v1 on loopback against the local chain, paying from its own "
        "treasury. Chain settings default to the local_chain.json that `manage.py local_chain` writes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost", "::1"])
        parser.add_argument("--port", type=int, default=8702)
        parser.add_argument("--rpc-url", default=None)
        parser.add_argument("--usdt-address", default=None)
        parser.add_argument(
            "--treasury-key",
            default=None,
            help="private key paying out its exchanges (not the ChangeNOW sandbox's); default "
            "$SANDBOX_SECOND_TREASURY_PRIVATE_KEY, then the second treasury of local_chain.json",
        )
        parser.add_argument("--api-key", default=None, help="key clients must send; default $LETSEXCHANGE_API_KEY")
        parser.add_argument("--eth-usd", type=_decimal, default=Decimal("3000"))
        parser.add_argument("--fee-percent", type=_decimal, default=Decimal("0.4"), help="taken in the rate")
        parser.add_argument(
            "--withdrawal-fee-usd", type=_decimal, default=Decimal("1"), help="fixed fee taken from each payout"
        )
        parser.add_argument("--min-amount-usd", type=_decimal, default=Decimal("5"))
        parser.add_argument("--max-amount-usd", type=_decimal, default=Decimal("100000000"))
        parser.add_argument("--step-delay", type=float, default=0.5, help="seconds in each status after the deposit")
        parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between chain polls")
        parser.add_argument("--confirmations", type=int, default=1, help="blocks a deposit needs (1 = its own)")
        parser.add_argument("--state-dir", type=Path, default=None, help="where local_chain.json is (VAR_DIR)")

    def handle(self, *args: Any, **options: Any) -> None:
        state_file = (options["state_dir"] or Path(settings.VAR_DIR)) / LOCAL_CHAIN_STATE_FILE
        chain = LocalChain.read_json(state_file) if state_file.exists() else None
        rpc_url = options["rpc_url"] or (chain.rpc_url if chain else None)
        usdt_address = options["usdt_address"] or (chain.usdt_address if chain else None)
        treasury_key = (
            options["treasury_key"]
            or os.environ.get("SANDBOX_SECOND_TREASURY_PRIVATE_KEY")
            or (chain.second_treasury_private_key if chain else None)
        )
        api_key = options["api_key"] or os.environ.get("LETSEXCHANGE_API_KEY")
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
        config = LetsExchangeSandboxConfig(
            rpc_url=str(rpc_url),
            usdt_address=str(usdt_address),
            treasury_private_key=str(treasury_key),
            api_key=str(api_key),
            eth_usd=options["eth_usd"],
            fee_percent=options["fee_percent"],
            withdrawal_fee_usd=options["withdrawal_fee_usd"],
            min_amount_usd=options["min_amount_usd"],
            max_amount_usd=options["max_amount_usd"],
            timing=LifecycleTiming(
                step_delay_seconds=options["step_delay"],
                poll_interval_seconds=options["poll_interval"],
                deposit_confirmations=options["confirmations"],
            ),
        )
        sandbox = SandboxLetsExchange(config, host=options["host"], port=options["port"])
        stop_requested = threading.Event()
        previous_handlers = {
            signum: signal.signal(signum, _stopper(stop_requested)) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            try:
                base_url = sandbox.start()
            except Exception as error:  # any start-up failure (chain down, port taken) is reported the same way
                raise CommandError(f"sandbox did not start: {error}") from error
            self.stdout.write(f"LETSEXCHANGE_API_URL={sandbox.api_url}")
            self.stdout.write(f"sandbox LetsExchange running on {base_url}; Ctrl-C to stop", self.style.SUCCESS)
            self.stdout.flush()
            while not stop_requested.wait(0.5):  # a timed wait keeps signal handling prompt
                pass
        finally:
            sandbox.stop()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        self.stdout.write("sandbox stopped")


def _stopper(stop_requested: threading.Event) -> Any:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    return request_stop
