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
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings

from integrations.assets import ASSETS, Asset, asset
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.environment_secrets import secret_from_environment

from .alerts import EXCHANGE_UNAUTHORIZED
from .http_answers import full_jitter, json_object, retry_after_seconds
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


# Our registry's assets in ChangeNOW's codes: the currency and network its v2 exchange calls take,
# and the one-word ticker /v2/validate/address takes. The registry took ChangeNOW's currency and
# network codes as its own names, and its tickers are the market's, so the table is the registry's;
# an asset left out of it is one ChangeNOW does not trade for us.
CHANGENOW_CODES: dict[tuple[str, str], tuple[str, str, str]] = {
    known.key: (known.symbol, known.chain, known.ticker) for known in ASSETS.values()
}


def read_api_key(config: Mapping[str, Any] | None = None) -> str:
    """The API key, read at each use (a rotated key needs no restart): from the environment
    variable the configuration names (`api_key_env`), or the mounted file `<that name>_FILE`."""
    return secret_from_environment((config or {}).get("api_key_env", "CHANGENOW_API_KEY"))


class ChangeNowExchange:
    """The ChangeNOW adapter of the exchange-provider port (fixed-rate flow)."""

    def __init__(
        self,
        name: str = "changenow",
        config: Mapping[str, Any] | None = None,
        *,
        base_url: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        max_inline_wait: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.config: Mapping[str, Any] = config if config is not None else settings.PGP_EXCHANGES.get(name, {})
        self.base_url = (base_url or self.config.get("url") or "https://api.changenow.io").rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_inline_wait = max_inline_wait
        self.session = session or requests.Session()

    # --- the port --------------------------------------------------------------------------

    def supports(self, pair: ExchangePair) -> bool:
        return pair.source.key in CHANGENOW_CODES and pair.target.key in CHANGENOW_CODES and not pair.is_direct

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
                "contactEmail": self.config.get("contact_email", ""),
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

    def validate_address(self, receiving: Asset, address: str) -> AddressCheck:
        # /v2/validate/address takes the one-word ticker, which names the network for tokens.
        ticker = _codes(receiving)[2]
        body = self._call("GET", "/v2/validate/address", params={"currency": ticker, "address": address})
        return AddressCheck(valid=bool(body.get("result")), message=str(body.get("message") or ""))

    # --- transport ---------------------------------------------------------------------------

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
            wait = full_jitter(self.backoff_base, attempt)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers={API_KEY_HEADER: read_api_key(self.config)},
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_error = ExchangeUnavailable(f"{self.name} {method} {path}: {type(exc).__name__}")
            else:
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = retry_after_seconds(response)
                    last_error = ExchangeUnavailable(
                        f"{method} {path}: HTTP {response.status_code}",
                        retry_after=retry_after,
                        http_status=response.status_code,
                        code=_error_code(response),
                    )
                    if retry_after is not None:
                        wait = retry_after
                elif response.status_code == 401:
                    raise _unauthorized(self.name, method, path, response)
                elif response.status_code >= 400:
                    code = _error_code(response)
                    raise ExchangeRefused(
                        f"{method} {path}: HTTP {response.status_code} {code}: {_error_message(response)}",
                        kind=REFUSALS.get(code, RefusalKind.OTHER),
                        code=code,
                        http_status=response.status_code,
                    )
                else:
                    return json_object(response, f"{method} {path}")
            logger.warning("ChangeNOW %s (attempt %s/%s)", last_error, attempt, attempts)
            if attempt == attempts or wait > self.max_inline_wait:
                break
            time.sleep(wait)
        assert last_error is not None
        raise last_error


def _unauthorized(provider: str, method: str, path: str, response: requests.Response) -> ExchangeUnauthorized:
    """Alert (the line names the call, never the key; throttled per process: a refused key
    concerns every batch at once) and return the wait to raise."""
    code = _error_code(response)
    alert(
        EXCHANGE_UNAUTHORIZED,
        Subject("exchange_provider", provider),
        provider=provider,
        call=f"{method} {path}",
        http=401,
        error=code or "-",
    )
    return ExchangeUnauthorized(f"{method} {path}: HTTP 401 {code}: API key refused", http_status=401, code=code)


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


def _codes(known: Asset) -> tuple[str, str, str]:
    try:
        return CHANGENOW_CODES[known.key]
    except KeyError:
        raise ExchangeRefused(f"ChangeNOW has no code for {known.id}", kind=RefusalKind.PAIR_UNAVAILABLE) from None


def _asset_of(currency: Any, network: Any) -> Asset | None:
    """The registry asset ChangeNOW's codes name (None: codes we do not know)."""
    if not (isinstance(currency, str) and currency and isinstance(network, str) and network):
        return None
    for key, (their_currency, their_network, _) in CHANGENOW_CODES.items():
        if (their_currency, their_network) == (currency.lower(), network.lower()):
            return asset(*key)
    return None


def _reported_pair(body: dict[str, Any]) -> ExchangePair | None:
    source = _asset_of(body.get("fromCurrency"), body.get("fromNetwork"))
    target = _asset_of(body.get("toCurrency"), body.get("toNetwork"))
    return ExchangePair(source, target) if source and target else None


def _timestamp(value: Any) -> datetime | None:
    """ChangeNOW's ISO 8601 timestamps ("2026-11-22T14:22:54.942Z")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExchangeBadResponse(f"timestamp {value!r} is not ISO 8601") from exc


def _pair_params(pair: ExchangePair) -> dict[str, str]:
    from_currency, from_network, _ = _codes(pair.source)
    to_currency, to_network, _ = _codes(pair.target)
    return {
        "fromCurrency": from_currency,
        "toCurrency": to_currency,
        "fromNetwork": from_network,
        "toNetwork": to_network,
    }
