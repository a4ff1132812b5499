"""ChangeNOW API v2, as an exchange provider (integrations.exchange.port): timeouts on every
call, normalised statuses and errors, bounded retries.

The API as documented: https://documenter.getpostman.com/view/8180765/SVfTPnM8 (ChangeNOW's
official v2 reference; the section of each call is named where it is used).

Retries (reliability rule 5) happen here only for what is safe and short: 429 (honouring
Retry-After), 5xx and connection failures, with exponential backoff and full jitter, never on
other 4xx. A wait longer than `max_inline_wait` is not slept inside the worker: the error is
raised with `retry_after` so the calling task re-schedules itself with that countdown.

A 401 (a bad or rotated API key) is alerted and raised as a wait, never as a refusal: the batch
is not at fault, and the task's backoff retries it once the right key is in place.
"""

import json
import logging
import random
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from integrations.assets import changenow_ticker
from pgp_project.operations.alerts import Subject, alert

from .alerts import EXCHANGE_UNAUTHORIZED
from .port import (
    AddressCheck,
    AmountRange,
    CreatedExchange,
    ExchangeBadResponse,
    ExchangePair,
    ExchangeRef,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeState,
    ExchangeStatus,
    ExchangeUnauthorized,
    ExchangeUnavailable,
    Quote,
    RefusalKind,
)

logger = logging.getLogger(__name__)

API_KEY_HEADER = "x-changenow-api-key"
# ChangeNOW's statuses in our words; "new" and "waiting" both mean the deposit is awaited.
STATUSES = {
    "new": ExchangeStatus.AWAITING_DEPOSIT,
    "waiting": ExchangeStatus.AWAITING_DEPOSIT,
    "confirming": ExchangeStatus.CONFIRMING,
    "verifying": ExchangeStatus.VERIFYING,
    "exchanging": ExchangeStatus.EXCHANGING,
    "sending": ExchangeStatus.SENDING,
    "finished": ExchangeStatus.FINISHED,
    "failed": ExchangeStatus.FAILED,
    "refunded": ExchangeStatus.REFUNDED,
}
# ChangeNOW's error codes in our words (an unlisted code is RefusalKind.OTHER), from the v2
# reference's "Errors" section. `deposit_too_small` is its other word for an amount under the
# pair's minimum, so it is decided like `out_of_range`.
REFUSALS = {
    "out_of_range": RefusalKind.OUT_OF_RANGE,
    "deposit_too_small": RefusalKind.OUT_OF_RANGE,
    "rate_id_not_found_or_expired": RefusalKind.RATE_EXPIRED,
    "not_valid_address": RefusalKind.INVALID_ADDRESS,
    "not_valid_refund_address": RefusalKind.INVALID_ADDRESS,
    "pair_is_inactive": RefusalKind.PAIR_UNAVAILABLE,
    "exchange_not_found": RefusalKind.NOT_FOUND,
}


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ExchangeBadResponse(f"amount {value!r} is not a number")
    try:
        return Decimal(str(value))
    except ArithmeticError as exc:
        raise ExchangeBadResponse(f"amount {value!r} is not a number") from exc


def _required_decimal(body: dict[str, Any], key: str) -> Decimal:
    value = _decimal(body.get(key))
    if value is None:
        raise ExchangeBadResponse(f"response has no {key}")
    return value


def read_api_key() -> str:
    """The API key, read at each use: from CHANGENOW_API_KEY_FILE when set (a mounted secret
    that the orchestrator rotates), else from the environment-backed setting."""
    key_file = getattr(settings, "CHANGENOW_API_KEY_FILE", "")
    if key_file:
        return Path(key_file).read_text().strip()
    return settings.CHANGENOW_API_KEY


class ChangeNowExchange:
    """The ChangeNOW adapter of the exchange-provider port (fixed-rate flow)."""

    name = "changenow"

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

    # --- the port --------------------------------------------------------------------------

    def minimum(self, pair: ExchangePair) -> Decimal:
        return self.amount_range(pair).minimum

    def amount_range(self, pair: ExchangePair) -> AmountRange:
        # "Exchange range" (GET /v2/exchange/range): minAmount and maxAmount of the pair for the
        # flow; maxAmount is null when ChangeNOW sets no maximum.
        body = self._call("GET", "/v2/exchange/range", params={**_pair_params(pair), "flow": "fixed-rate"})
        return AmountRange(minimum=_required_decimal(body, "minAmount"), maximum=_decimal(body.get("maxAmount")))

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote:
        # "Estimated exchange amount" (GET /v2/exchange/estimated-amount): with flow=fixed-rate and
        # useRateId=true it answers the rateId and the validUntil of that rate. It is the only
        # answer that says when the rate expires (create and by-id do not), so it is kept here
        # for the re-check before funding.
        body = self._call(
            "GET",
            "/v2/exchange/estimated-amount",
            params={
                **_pair_params(pair),
                "fromAmount": str(from_amount),
                "flow": "fixed-rate",
                "useRateId": "true",
            },
        )
        return Quote(
            to_amount=_required_decimal(body, "toAmount"),
            rate_id=body.get("rateId"),
            valid_until=_timestamp(body.get("validUntil")),
        )

    def create(self, request: ExchangeRequest) -> CreatedExchange:
        # "Create exchange transaction" (POST /v2/exchange, fixed-rate flow). One attempt only: a
        # timeout may still have created the exchange, and a blind second POST would create
        # another. The task retries the whole step instead (reliability rule 4).
        body = self._call(
            "POST",
            "/v2/exchange",
            inline_retries=False,
            json_body={
                **_pair_params(request.pair),
                "fromAmount": str(request.from_amount),
                "toAmount": "",
                "address": request.payout_address,
                "extraId": request.payout_extra_id,
                "refundAddress": request.refund_address,
                "refundExtraId": "",
                "userId": "",
                "payload": "",
                # Where ChangeNOW's support writes about this exchange (a hold, a refund).
                "contactEmail": settings.CHANGENOW_CONTACT_EMAIL,
                "flow": "fixed-rate",
                "type": "direct",
                "rateId": request.rate_id or "",
            },
        )
        for key in ("id", "payinAddress"):
            if not body.get(key):
                raise ExchangeBadResponse(f"created exchange has no {key}")
        return CreatedExchange(
            id=str(body["id"]),
            from_amount=_required_decimal(body, "fromAmount"),
            to_amount=_required_decimal(body, "toAmount"),
            payin_address=str(body["payinAddress"]),
            payout_address=str(body.get("payoutAddress") or ""),
            pair=_reported_pair(body),
            # Not documented on this answer (the estimate carries it); read should it ever come.
            valid_until=_timestamp(body.get("validUntil")),
            payout_extra_id=str(body.get("payoutExtraId") or ""),
        )

    def status(self, exchange: ExchangeRef) -> ExchangeState:
        # "Exchange status" (GET /v2/exchange/by-id).
        body = self._call("GET", "/v2/exchange/by-id", params={"id": exchange.id})
        if not body.get("status"):
            raise ExchangeBadResponse("exchange has no status")
        provider_status = str(body["status"])
        return ExchangeState(
            id=str(body.get("id") or exchange.id),
            status=STATUSES.get(provider_status, ExchangeStatus.UNKNOWN),
            provider_status=provider_status,
            amount_from=_decimal(body.get("amountFrom")),
            amount_to=_decimal(body.get("amountTo")),
            payin_hash=str(body.get("payinHash") or ""),
            payout_hash=str(body.get("payoutHash") or ""),
            refund_hash=str(body.get("refundHash") or ""),
            payout_address=str(body.get("payoutAddress") or ""),
            # Likewise undocumented here: the batch keeps the estimate's expiry for the re-check.
            valid_until=_timestamp(body.get("validUntil")),
        )

    def validate_address(self, *, currency: str, network: str, address: str) -> AddressCheck:
        # /v2/validate/address takes the one-word ticker, which names the network for tokens.
        ticker = changenow_ticker(currency, network)
        body = self._call("GET", "/v2/validate/address", params={"currency": ticker, "address": address})
        return AddressCheck(valid=bool(body.get("result")), message=str(body.get("message") or ""))

    # --- transport ---------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many workers instead of synchronising them.
        return random.uniform(0, self.backoff_base * 2 ** (attempt - 1))  # noqa: S311 - not crypto

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict | None = None,
        inline_retries: bool = True,
    ) -> dict[str, Any]:
        url = self.base_url + path
        last_error: ExchangeUnavailable | None = None
        attempts = self.max_attempts if inline_retries else 1
        for attempt in range(1, attempts + 1):
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
                last_error = ExchangeUnavailable(f"{method} {path}: {type(exc).__name__}")
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = _retry_after_seconds(response)
                    last_error = ExchangeUnavailable(
                        f"{method} {path}: HTTP {response.status_code}",
                        retry_after=retry_after,
                        http_status=response.status_code,
                        code=_error_code(response),
                    )
                    if retry_after is not None:
                        wait = retry_after
                elif response.status_code == 401:
                    raise _unauthorized(method, path, response)
                elif response.status_code >= 400:
                    code = _error_code(response)
                    raise ExchangeRefused(
                        f"{method} {path}: HTTP {response.status_code} {code}: {_error_message(response)}",
                        kind=REFUSALS.get(code, RefusalKind.OTHER),
                        code=code,
                        http_status=response.status_code,
                    )
                else:
                    return _json_object(response, f"{method} {path}")
            logger.warning("ChangeNOW %s (attempt %s/%s)", last_error, attempt, attempts)
            if attempt == attempts or wait > self.max_inline_wait:
                break
            time.sleep(wait)
        assert last_error is not None
        raise last_error


def _unauthorized(method: str, path: str, response: requests.Response) -> ExchangeUnauthorized:
    """Alert (the line names the call, never the key; throttled per process: a refused key
    concerns every batch at once) and return the wait to raise."""
    code = _error_code(response)
    alert(
        EXCHANGE_UNAUTHORIZED,
        Subject("exchange_provider", "changenow"),
        provider="changenow",
        call=f"{method} {path}",
        http=401,
        error=code or "-",
    )
    return ExchangeUnauthorized(f"{method} {path}: HTTP 401 {code}: API key refused", http_status=401, code=code)


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = json.loads(response.text, parse_float=Decimal)
    except ValueError as exc:
        raise ExchangeBadResponse(f"{what}: body is not JSON") from exc
    if not isinstance(body, dict):
        raise ExchangeBadResponse(f"{what}: body is not a JSON object")
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


def _reported_pair(body: dict[str, Any]) -> ExchangePair | None:
    names = [body.get(key) for key in ("fromCurrency", "fromNetwork", "toCurrency", "toNetwork")]
    if not all(isinstance(name, str) and name for name in names):
        return None
    return ExchangePair(*(str(name).lower() for name in names))


def _timestamp(value: Any) -> datetime | None:
    """ChangeNOW's ISO 8601 timestamps ("2026-11-22T14:22:54.942Z")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExchangeBadResponse(f"timestamp {value!r} is not ISO 8601") from exc


def _pair_params(pair: ExchangePair) -> dict[str, str]:
    return {
        "fromCurrency": pair.from_currency,
        "toCurrency": pair.to_currency,
        "fromNetwork": pair.from_network,
        "toNetwork": pair.to_network,
    }
