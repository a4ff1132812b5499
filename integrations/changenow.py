"""ChangeNOW API v2 client: timeouts on every call, typed errors, bounded retries.

Retries (reliability rule 5) happen here only for what is safe and short: 429 (honouring
Retry-After), 5xx and connection failures, with exponential backoff and full jitter, never on
other 4xx. A wait longer than `max_inline_wait` is not slept inside the worker: the error is
raised with `retry_after` so the calling task re-schedules itself with that countdown.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "x-changenow-api-key"
TERMINAL_STATUSES = frozenset({"finished", "failed", "refunded"})
KNOWN_STATUSES = frozenset(
    {"new", "waiting", "confirming", "exchanging", "sending", "finished", "failed", "refunded", "verifying"}
)


# /v2/validate/address takes ChangeNOW's legacy ticker, which names the network for tokens.
LEGACY_TICKERS = {
    ("usdt", "eth"): "usdterc20",
    ("usdt", "trx"): "usdttrc20",
    ("usdt", "bsc"): "usdtbsc",
    ("usdt", "sol"): "usdtsol",
    ("usdc", "eth"): "usdc",
    ("usdc", "bsc"): "usdcbsc",
    ("usdc", "sol"): "usdcsol",
    ("bnb", "bsc"): "bnbbsc",
    ("matic", "matic"): "maticmainnet",
    ("avax", "avaxc"): "avaxc",
}


def legacy_ticker(currency: str, network: str) -> str:
    currency, network = currency.lower(), network.lower()
    if (currency, network) in LEGACY_TICKERS:
        return LEGACY_TICKERS[(currency, network)]
    return currency if network in ("", currency) else currency + network


class ChangeNowError(Exception):
    """Base of every ChangeNOW failure; the message never contains the API key."""

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class ChangeNowRejected(ChangeNowError):
    """A 4xx other than 429: our request is wrong; retrying it unchanged cannot help."""


class ChangeNowUnavailable(ChangeNowError):
    """429, 5xx, timeout or connection failure after the inline retries: try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ChangeNowBadResponse(ChangeNowError):
    """A 2xx whose body is not what the API documents."""


@dataclass(frozen=True)
class Estimate:
    to_amount: Decimal
    rate_id: str | None


@dataclass(frozen=True)
class CreatedExchange:
    id: str
    from_amount: Decimal
    to_amount: Decimal
    payin_address: str
    payout_address: str


@dataclass(frozen=True)
class ExchangeState:
    id: str
    status: str
    amount_from: Decimal | None
    amount_to: Decimal | None
    expected_amount_to: Decimal | None
    payin_hash: str
    payout_hash: str
    refund_hash: str

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_known(self) -> bool:
        return self.status in KNOWN_STATUSES


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ChangeNowBadResponse(f"amount {value!r} is not a number")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise ChangeNowBadResponse(f"amount {value!r} is not a number") from exc


def _required_decimal(body: dict[str, Any], key: str) -> Decimal:
    value = _decimal(body.get(key))
    if value is None:
        raise ChangeNowBadResponse(f"response has no {key}")
    return value


def read_api_key() -> str:
    """The API key, read at each use: from CHANGENOW_API_KEY_FILE when set (a mounted secret
    that the orchestrator rotates), else from the environment-backed setting."""
    key_file = getattr(settings, "CHANGENOW_API_KEY_FILE", "")
    if key_file:
        return Path(key_file).read_text().strip()
    return settings.CHANGENOW_API_KEY


class ChangeNowClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        max_inline_wait: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = (base_url or settings.CHANGENOW_API_URL).rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_inline_wait = max_inline_wait
        self.session = session or requests.Session()

    # --- endpoints ---------------------------------------------------------------------------

    def min_amount(self, *, from_currency: str, from_network: str, to_currency: str, to_network: str) -> Decimal:
        body = self._call(
            "GET",
            "/v2/exchange/min-amount",
            params={
                "fromCurrency": from_currency,
                "toCurrency": to_currency,
                "fromNetwork": from_network,
                "toNetwork": to_network,
                "flow": "fixed-rate",
            },
        )
        return _required_decimal(body, "minAmount")

    def estimate(
        self, *, from_currency: str, from_network: str, to_currency: str, to_network: str, from_amount: Decimal
    ) -> Estimate:
        body = self._call(
            "GET",
            "/v2/exchange/estimated-amount",
            params={
                "fromCurrency": from_currency,
                "toCurrency": to_currency,
                "fromAmount": str(from_amount),
                "fromNetwork": from_network,
                "toNetwork": to_network,
                "flow": "fixed-rate",
                "useRateId": "true",
            },
        )
        return Estimate(to_amount=_required_decimal(body, "toAmount"), rate_id=body.get("rateId"))

    def create_exchange(
        self,
        *,
        from_currency: str,
        from_network: str,
        to_currency: str,
        to_network: str,
        from_amount: Decimal,
        address: str,
        refund_address: str,
        rate_id: str | None,
    ) -> CreatedExchange:
        body = self._call(
            "POST",
            "/v2/exchange",
            json_body={
                "fromCurrency": from_currency,
                "fromNetwork": from_network,
                "toCurrency": to_currency,
                "toNetwork": to_network,
                "fromAmount": str(from_amount),
                "toAmount": "",
                "address": address,
                "extraId": "",
                "refundAddress": refund_address,
                "refundExtraId": "",
                "userId": "",
                "payload": "",
                "contactEmail": "",
                "flow": "fixed-rate",
                "type": "direct",
                "rateId": rate_id or "",
            },
        )
        for key in ("id", "payinAddress"):
            if not body.get(key):
                raise ChangeNowBadResponse(f"created exchange has no {key}")
        return CreatedExchange(
            id=str(body["id"]),
            from_amount=_required_decimal(body, "fromAmount"),
            to_amount=_required_decimal(body, "toAmount"),
            payin_address=str(body["payinAddress"]),
            payout_address=str(body.get("payoutAddress") or address),
        )

    def exchange_state(self, exchange_id: str) -> ExchangeState:
        body = self._call("GET", "/v2/exchange/by-id", params={"id": exchange_id})
        if not body.get("status"):
            raise ChangeNowBadResponse("exchange has no status")
        return ExchangeState(
            id=str(body.get("id") or exchange_id),
            status=str(body["status"]),
            amount_from=_decimal(body.get("amountFrom")),
            amount_to=_decimal(body.get("amountTo")),
            expected_amount_to=_decimal(body.get("expectedAmountTo")),
            payin_hash=str(body.get("payinHash") or ""),
            payout_hash=str(body.get("payoutHash") or ""),
            refund_hash=str(body.get("refundHash") or ""),
        )

    def validate_address(self, *, currency: str, address: str) -> tuple[bool, str]:
        body = self._call("GET", "/v2/validate/address", params={"currency": currency, "address": address})
        return bool(body.get("result")), str(body.get("message") or "")

    # --- transport ---------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many workers instead of synchronising them.
        return random.uniform(0, self.backoff_base * 2 ** (attempt - 1))  # noqa: S311 - not crypto

    def _call(
        self, method: str, path: str, *, params: dict[str, str] | None = None, json_body: dict | None = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        last_error: ChangeNowUnavailable | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait = self._backoff(attempt)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers={API_KEY_HEADER: read_api_key()},
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_error = ChangeNowUnavailable(f"{method} {path}: {type(exc).__name__}")
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = _retry_after_seconds(response)
                    last_error = ChangeNowUnavailable(
                        f"{method} {path}: HTTP {response.status_code}",
                        retry_after=retry_after,
                        http_status=response.status_code,
                        code=_error_code(response),
                    )
                    if retry_after is not None:
                        wait = retry_after
                elif response.status_code >= 400:
                    code = _error_code(response)
                    raise ChangeNowRejected(
                        f"{method} {path}: HTTP {response.status_code} {code}: {_error_message(response)}",
                        code=code,
                        http_status=response.status_code,
                    )
                else:
                    return _json_object(response, f"{method} {path}")
            logger.warning("ChangeNOW %s (attempt %s/%s)", last_error, attempt, self.max_attempts)
            if attempt == self.max_attempts or wait > self.max_inline_wait:
                break
            time.sleep(wait)
        assert last_error is not None
        raise last_error


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise ChangeNowBadResponse(f"{what}: body is not JSON") from exc
    if not isinstance(body, dict):
        raise ChangeNowBadResponse(f"{what}: body is not a JSON object")
    return body


def _error_code(response: requests.Response) -> str:
    try:
        body = json.loads(response.text)
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _error_message(response: requests.Response) -> str:
    try:
        body = json.loads(response.text)
    except ValueError:
        return response.text[:200]
    return str(body.get("message", ""))[:500] if isinstance(body, dict) else ""


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
