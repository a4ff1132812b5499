"""The sandbox ChangeNOW HTTP server: API v2 under /v2/, test controls under /sandbox/.

Runs in background threads of the calling process (pytest fixtures) or in the foreground of the
`sandbox_changenow` management command. Binds to loopback only.

API v2 requests carry the key in the `x-changenow-api-key` header, and too many of them are
answered 429, as ChangeNOW's API v2 documentation describes under "Authentication" and its "Rate
limits" (https://documenter.getpostman.com/view/8180765/SVfTPnM8); the Retry-After the sandbox adds (a fault a test
switches on) is HTTP's, which the adapter honours.

The HTTP plumbing, the chain watcher, the /sandbox/ controls and the faults are host.py's, shared
with every provider's sandbox; this module is ChangeNOW's front on them.
"""

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from standins.sandbox_changenow import jsonio
from standins.sandbox_changenow.api import ApiError, ChangeNowApi
from standins.sandbox_changenow.assets import DEFAULT_USD_PRICES
from standins.sandbox_changenow.faults import InjectedError
from standins.sandbox_changenow.host import ChainAccess, Reply, SandboxHost
from standins.sandbox_changenow.pricing import Pricing
from standins.sandbox_changenow.watcher import LifecycleTiming

API_KEY_HEADER = "x-changenow-api-key"
# ChangeNOW's error code for each plumbing status the host may answer.
_PLUMBING_CODES = {
    400: "not_valid_params",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    500: "internal_error",
}


@dataclass(frozen=True)
class SandboxConfig:
    rpc_url: str
    usdt_address: str
    treasury_private_key: str
    api_key: str
    eth_usd: Decimal = Decimal("3000")
    fee_percent: Decimal = Decimal("0.5")
    min_amount_usd: Decimal = Decimal("5")
    # What /v2/exchange/range answers as maxAmount, in USD worth of the asset sent (ChangeNOW sets
    # one per pair for the fixed-rate flow). High by default, so that only a test that lowers it
    # (the `max_amount_usd` setting) meets it: some move millions through the sandbox.
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
        return f"SandboxConfig(rpc_url={self.rpc_url!r}, usdt_address={self.usdt_address!r}, eth_usd={self.eth_usd})"


class SandboxChangeNow(SandboxHost):
    """A ChangeNOW stand-in on loopback, watching the local chain for deposits."""

    name = "sandbox-changenow"
    server_version = "ChangeNowSandbox/1.0"
    logger_name = "standins.sandbox_changenow"

    def __init__(self, config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not config.api_key:
            raise ValueError("the sandbox needs a non-empty API key")
        super().__init__(config.chain_access(), host=host, port=port)
        self.config = config
        self.api = ChangeNowApi(self.store, self.faults, config.pricing(), config.rate_id_ttl_seconds)

    def __enter__(self) -> "SandboxChangeNow":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_prices(self, *, fee_percent: Decimal) -> None:
        """Quote better or worse from now on (a benchmark's randomised market, say); POST
        /sandbox/reset goes back to the configured fee."""
        self.api.reprice(fee_percent)

    def on_reset(self) -> None:
        self.api.reprice(self.config.fee_percent)

    def exchanges(self) -> list[dict[str, Any]]:
        """Every exchange as by-id shows it, plus what only the sandbox knows: the outcome it was
        set up for, the contactEmail it was created with, and the payout it really sent."""
        with self.store.lock:
            return self.describe_exchanges()

    def describe_exchanges(self) -> list[dict[str, Any]]:
        return [
            {
                **exchange.status_json(),
                "sandboxOutcome": exchange.outcome,
                "sandboxContactEmail": exchange.contact_email,
                "sandboxAmountSent": exchange.amount_to,
                "sandboxPayoutHash": exchange.payout_hash,
            }
            for exchange in self.store.all()
        ]

    # --- the ChangeNOW front ------------------------------------------------------------------

    def authorized(self, headers: Mapping[str, str]) -> bool:
        api_key = headers.get(API_KEY_HEADER)
        return bool(api_key) and hmac.compare_digest(str(api_key).encode(), self.config.api_key.encode())

    def unauthorized_reply(self) -> Reply:
        return Reply(401, {"error": "unauthorized", "message": f"Invalid or missing {API_KEY_HEADER}"})

    def is_api_path(self, path: str) -> bool:
        return path.startswith("/v2/")

    def fault_reply(self, injected: InjectedError) -> Reply:
        if injected.status == 429:
            return Reply(
                429,
                {"error": "too_many_requests", "message": "Rate limit exceeded (sandbox fault)"},
                {"Retry-After": str(injected.retry_after)},
            )
        if injected.status == 400:
            return Reply(400, {"error": injected.error, "message": f"{injected.error} (sandbox fault)"})
        return Reply(injected.status, {"error": "internal_error", "message": "Internal server error (sandbox fault)"})

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, {"error": _PLUMBING_CODES.get(status, "internal_error"), "message": message})

    def answer_api(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Reply:
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/v2/exchange/min-amount"): lambda: self.api.min_amount(query),
            ("GET", "/v2/exchange/range"): lambda: self.api.exchange_range(query),
            ("GET", "/v2/exchange/estimated-amount"): lambda: self.api.estimated_amount(query),
            ("POST", "/v2/exchange"): lambda: self.api.create_exchange(_parse_json(body)),
            ("GET", "/v2/exchange/by-id"): lambda: self.api.exchange_by_id(query),
            ("GET", "/v2/validate/address"): lambda: self.api.validate_address(query),
        }
        try:
            return Reply(200, _dispatch(routes, method, path))
        except ApiError as error:
            return Reply(error.status, error.body())


def _dispatch(routes: Mapping[tuple[str, str], Callable[[], Any]], method: str, path: str) -> Any:
    handler = routes.get((method, path))
    if handler is None:
        if any(route_path == path for _, route_path in routes):
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}")
        raise ApiError(404, "not_found", f"no such endpoint: {path}")
    return handler()


def _parse_json(body: bytes) -> Any:
    try:
        return jsonio.loads(body or b"null")
    except ValueError as error:
        raise ApiError(400, "not_valid_params", "the body is not valid JSON") from error
