"""The sandbox LetsExchange: its API v1 under /api/v1/ on the shared sandbox host (loopback HTTP,
the watcher settling exchanges on the local anvil chain, /sandbox/ controls and faults:
standins.sandbox_changenow.host), for tests and the local demo.

Requests carry the key as `Authorization: Bearer <key>`, and a wrong one is answered 403 with
{"error": ...}, as the API reference's "Authorizations" and its 403 example say
(https://api-doc.letsexchange.io/api-reference/endpoint/v1/transaction/get-transaction-status).
Too many requests are answered 429 with HTTP's Retry-After (a fault a test switches on).
"""

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from standins.sandbox_changenow import jsonio
from standins.sandbox_changenow.assets import DEFAULT_USD_PRICES
from standins.sandbox_changenow.faults import FaultSpecError, InjectedError
from standins.sandbox_changenow.host import ChainAccess, HttpError, Reply, SandboxHost
from standins.sandbox_changenow.pricing import Pricing
from standins.sandbox_changenow.watcher import LifecycleTiming
from standins.sandbox_letsexchange.api import LetsExchangeApi, refusal, transaction_json

API_PREFIX = "/api/v1/"
TRANSACTION_PATH = "/api/v1/transaction"


@dataclass(frozen=True)
class LetsExchangeSandboxConfig:
    rpc_url: str
    usdt_address: str
    # Its own treasury (LocalChain.second_treasury_private_key when it shares the chain with the
    # ChangeNOW sandbox): one signer per account, or the two would reuse nonces.
    treasury_private_key: str
    api_key: str
    eth_usd: Decimal = Decimal("3000")
    # Its prices, per instance, so a test can make it quote better or worse than the ChangeNOW
    # sandbox (0.5 % and no fixed fee): the percentage taken in the rate, and a fixed network fee
    # taken from each payout, in USD worth of the asset paid ("withdrawal_fee" of Get Coin Info).
    fee_percent: Decimal = Decimal("0.4")
    withdrawal_fee_usd: Decimal = Decimal("1")
    min_amount_usd: Decimal = Decimal("5")
    max_amount_usd: Decimal | None = Decimal("100000000")
    rate_id_ttl_seconds: int = 300
    timing: LifecycleTiming = field(default_factory=LifecycleTiming)

    def pricing(self) -> Pricing:
        return Pricing(
            usd_prices={**DEFAULT_USD_PRICES, "eth": self.eth_usd},
            fee_percent=self.fee_percent,
            min_amount_usd=self.min_amount_usd,
            max_amount_usd=self.max_amount_usd,
        )

    def chain_access(self) -> ChainAccess:
        return ChainAccess(self.rpc_url, self.usdt_address, self.treasury_private_key, self.timing)

    def __repr__(self) -> str:  # the treasury key and the API key must never reach a log line
        return (
            f"LetsExchangeSandboxConfig(rpc_url={self.rpc_url!r}, eth_usd={self.eth_usd}, "
            f"fee_percent={self.fee_percent}, withdrawal_fee_usd={self.withdrawal_fee_usd})"
        )


class SandboxLetsExchange(SandboxHost):
    """A LetsExchange stand-in on loopback, settling on the local chain."""

    name = "sandbox-letsexchange"
    server_version = "LetsExchangeSandbox/1.0"
    logger_name = "standins.sandbox_letsexchange"

    def __init__(self, config: LetsExchangeSandboxConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not config.api_key:
            raise ValueError("the sandbox needs a non-empty API key")
        super().__init__(config.chain_access(), host=host, port=port)
        self.config = config
        self.api = LetsExchangeApi(
            self.store,
            self.faults,
            config.pricing(),
            withdrawal_fee_usd=config.withdrawal_fee_usd,
            rate_id_ttl_seconds=config.rate_id_ttl_seconds,
        )

    @property
    def api_url(self) -> str:
        """What its PGP_EXCHANGES entry's `url` is (LETSEXCHANGE_API_URL): the base each call's
        /v1/... is added to."""
        return self.base_url + "/api"

    def __enter__(self) -> "SandboxLetsExchange":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def describe_exchanges(self) -> list[dict[str, Any]]:
        """Each transaction as Get Transaction Info shows it, plus what only the sandbox knows."""
        return [
            {
                **transaction_json(exchange, created=False),
                "id": exchange.id,
                "sandboxOutcome": exchange.outcome,
                "sandboxEmail": exchange.contact_email,
                "sandboxAmountSent": exchange.amount_to,
                "sandboxPayoutHash": exchange.payout_hash,
            }
            for exchange in self.store.all()
        ]

    # --- its prices, changeable while it runs ----------------------------------------------------

    def set_prices(self, *, fee_percent: Decimal | None = None, withdrawal_fee_usd: Decimal | None = None) -> None:
        """Quote better or worse than another sandbox from now on (POST /sandbox/prices does the
        same over HTTP; POST /sandbox/reset goes back to the configured prices)."""
        current = self.api.prices()
        self.api.reprice(
            current["fee_percent"] if fee_percent is None else fee_percent,
            current["withdrawal_fee_usd"] if withdrawal_fee_usd is None else withdrawal_fee_usd,
        )
        self.log.info("%s prices now %s", self.name, self.api.prices())

    def extra_controls(self, body: bytes) -> dict[tuple[str, str], Callable[[], Any]]:
        return {
            ("POST", "/sandbox/prices"): lambda: self._prices_from(body),
            ("GET", "/sandbox/prices"): self.api.prices,
        }

    def on_reset(self) -> None:
        self.api.reprice(self.config.fee_percent, self.config.withdrawal_fee_usd)

    def _prices_from(self, body: bytes) -> dict[str, Decimal]:
        try:
            spec = jsonio.loads(body or b"null")
        except ValueError as error:
            raise FaultSpecError("the body is not valid JSON") from error
        if not isinstance(spec, dict) or not spec or set(spec) - {"fee_percent", "withdrawal_fee_usd"}:
            raise FaultSpecError("expected an object with fee_percent and/or withdrawal_fee_usd")
        fee_percent = _price(spec, "fee_percent", upper=Decimal(100))
        withdrawal_fee_usd = _price(spec, "withdrawal_fee_usd")
        self.set_prices(fee_percent=fee_percent, withdrawal_fee_usd=withdrawal_fee_usd)
        return self.api.prices()

    # --- the LetsExchange front -----------------------------------------------------------------

    def authorized(self, headers: Mapping[str, str]) -> bool:
        scheme, _, token = str(headers.get("authorization", "")).partition(" ")
        return (
            scheme.lower() == "bearer"
            and bool(token)
            and hmac.compare_digest(token.strip().encode(), self.config.api_key.encode())
        )

    def unauthorized_reply(self) -> Reply:
        return Reply(403, {"error": "Wrong API key in Bearer token"})

    def is_api_path(self, path: str) -> bool:
        return path.startswith(API_PREFIX)

    def fault_reply(self, injected: InjectedError) -> Reply:
        if injected.status == 429:
            return Reply(
                429, {"error": "Too Many Attempts. (sandbox fault)"}, {"Retry-After": str(injected.retry_after)}
            )
        if injected.status == 400:
            # A refusal fault: its `error` is the message LetsExchange would refuse with.
            return Reply(422, {"error": injected.error})
        return Reply(injected.status, {"error": "Server Error (sandbox fault)"})

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": message})

    def answer_api(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Reply:
        if path.startswith(TRANSACTION_PATH + "/") and method == "GET":
            transaction_id = path.removeprefix(TRANSACTION_PATH + "/")
            if "/" in transaction_id:
                return self.error_reply(404, f"no such endpoint: {path}")
            return Reply(200, self.api.transaction(transaction_id))
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("POST", "/api/v1/info"): lambda: self.api.info(_parse_json(body)),
            ("POST", TRANSACTION_PATH): lambda: self.api.create_transaction(_parse_json(body)),
        }
        handler = routes.get((method, path))
        if handler is None:
            return self.error_reply(404, f"no such endpoint: {method} {path}")
        return Reply(200, handler())


def _price(spec: Mapping[str, Any], name: str, upper: Decimal | None = None) -> Decimal | None:
    if name not in spec:
        return None
    raw = spec[name]
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise FaultSpecError(f"{name} must be a number")
    try:
        value = Decimal(raw)
    except ArithmeticError as error:
        raise FaultSpecError(f"{name} must be a number") from error
    if not value.is_finite() or value < 0 or (upper is not None and value >= upper):
        raise FaultSpecError(f"{name} must be a non-negative number" + (f" under {upper}" if upper else ""))
    return value


def _parse_json(body: bytes) -> Any:
    try:
        return jsonio.loads(body or b"null")
    except ValueError as error:
        raise refusal("The body is not valid JSON.") from error


__all__ = ["HttpError", "LetsExchangeSandboxConfig", "SandboxLetsExchange"]
