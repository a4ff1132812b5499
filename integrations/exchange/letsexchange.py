"""LetsExchange API v1, as an exchange provider (integrations.exchange.port): fixed-rate exchanges,
timeouts on every call, normalised statuses and errors, bounded retries.

The API as documented (https://api-doc.letsexchange.io, base https://api.letsexchange.io/api):
- "Swap flow (Centralized mode)" (https://api-doc.letsexchange.io/documentation/swap-flow): a
  fixed rate is quoted first, and the exchange is created with its rate id.
- "Get Coin Info", POST /v1/info (https://api-doc.letsexchange.io/api-reference/endpoint/v1/coins/info):
  with "float": false, the `amount` the user receives ("the final amount a user will receive after
  the exchange": net of the `withdrawal_fee` it also lists, so it is Quote.to_amount as it stands),
  the pair's `min_amount` and `max_amount`, the `rate_id` and `rate_id_expired_at` (milliseconds).
- "Create Transaction", POST /v1/transaction
  (https://api-doc.letsexchange.io/api-reference/endpoint/v1/transaction/create-transaction).
- "Get Transaction Info", GET /v1/transaction/{id}
  (https://api-doc.letsexchange.io/api-reference/endpoint/v1/transaction/get-transaction):
  `real_deposit_amount` is what arrived and `real_withdrawal_amount` what it pays for it, at the
  same fixed rate.
- "Transaction statuses" (https://api-doc.letsexchange.io/documentation/statuses): wait,
  confirmation, confirmed, exchanging, sending, sending_confirmation, success; a deposit not sent
  within 30 minutes makes it overdue (and "F.A.Q." says one sent later may still be processed, by
  hand); aml_check_failed (the AML signals field of Get Transaction Info) holds it.
- Authentication: `Authorization: Bearer <key>`; a refused key is answered 403 ("Wrong API key in
  Bearer token", the 403 of ".../v1/transaction/get-transaction-status").
- "Basics": coin codes in upper case; amounts are strings in answers and numbers in requests.

How the fixed rate is held: by its rate id, until `rate_id_expired_at`; that is Quote.valid_until,
the only expiry the API states (the create answer and Get Transaction Info carry none).

Errors: the reference documents no error codes, only an `error` message (the 403 example), so a
refusal is classified by the words of that message (`REFUSAL_WORDS`), 404 is not-found, and an
unrecognised refusal is RefusalKind.OTHER. Statuses and words it does not list are UNKNOWN / OTHER.

Address checks: the reference has no address-validation call. EVM addresses are checked here (the
registry's own rule, EIP-55 included); any other network's address cannot be checked by this
adapter, so it answers ExchangeUnavailable and routing asks the next provider.

Retries happen here only for what is safe and short: Get Coin Info (it creates nothing but a rate
id) and Get Transaction Info, on 429 (honouring Retry-After), 5xx and connection failures, with
exponential backoff and full jitter; never the create POST (a timeout may still have created the
exchange: the task retries the whole step). A wait longer than `max_inline_wait` is not slept in
the worker: the error carries `retry_after` so the task re-schedules itself.
"""

import json
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings

from integrations.addresses import address_problem
from integrations.assets import ASSETS, AddressFormat, Asset, address_format
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

DEFAULT_URL = "https://api.letsexchange.io/api"
# Our registry's assets in LetsExchange's codes: (coin, network), upper case as "Basics" asks.
# ETH/ETH, BTC/BTC and USDT/TRC20 are the reference's own examples; the others are its network
# names for those tokens (GET /api/v2/coins lists them: check a new row there before adding it).
# An asset left out is one this adapter does not trade.
LETSEXCHANGE_CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("eth", "eth"): ("ETH", "ETH"),
    ("eth", "usdt"): ("USDT", "ERC20"),
    ("trx", "usdt"): ("USDT", "TRC20"),
    ("bsc", "usdt"): ("USDT", "BEP20"),
    ("eth", "usdc"): ("USDC", "ERC20"),
    ("btc", "btc"): ("BTC", "BTC"),
    ("ltc", "ltc"): ("LTC", "LTC"),
    ("trx", "trx"): ("TRX", "TRX"),
    ("doge", "doge"): ("DOGE", "DOGE"),
    ("sol", "sol"): ("SOL", "SOL"),
    ("xrp", "xrp"): ("XRP", "XRP"),
}
# "Transaction statuses" in our words. A confirmed deposit is still before the exchange; a
# payout awaiting its confirmations is still sending. `overdue` (no deposit within 30 minutes)
# can never be funded again: FAILED, so a batch that sent nothing is cancelled and one whose
# deposit went out anyway goes to review (the F.A.Q.: such a deposit is processed by hand).
STATUSES = {
    "wait": ExchangeStatus.AWAITING_DEPOSIT,
    "confirmation": ExchangeStatus.CONFIRMING,
    "confirmed": ExchangeStatus.CONFIRMING,
    "exchanging": ExchangeStatus.EXCHANGING,
    "sending": ExchangeStatus.SENDING,
    "sending_confirmation": ExchangeStatus.SENDING,
    "success": ExchangeStatus.FINISHED,
    "overdue": ExchangeStatus.FAILED,
    "aml_check_failed": ExchangeStatus.VERIFYING,
    "refund": ExchangeStatus.REFUNDED,
    "error": ExchangeStatus.FAILED,
}
# A refusal's message, lower-cased, read for these words in this order (the first match wins).
REFUSAL_WORDS: tuple[tuple[tuple[str, ...], RefusalKind], ...] = (
    (("rate",), RefusalKind.RATE_EXPIRED),  # with "expired" or "not found"; see _refusal_kind
    (("address",), RefusalKind.INVALID_ADDRESS),
    (("minimum", "maximum", "min_amount", "max_amount", "less than", "more than"), RefusalKind.OUT_OF_RANGE),
    (("pair", "not available", "not active", "inactive", "not supported"), RefusalKind.PAIR_UNAVAILABLE),
)
# What Get Coin Info is asked about when only the pair's range is wanted (it needs an amount).
RANGE_PROBE_AMOUNT = Decimal(1)
_TRANSACTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def read_api_key(config: Mapping[str, Any]) -> str:
    """The API key, read at each use (a rotated key needs no restart): from the environment
    variable the configuration names (`api_key_env`), or the mounted file `<that name>_FILE`."""
    return secret_from_environment(config.get("api_key_env", "LETSEXCHANGE_API_KEY"))


class LetsExchangeExchange:
    """The LetsExchange adapter of the exchange-provider port (fixed-rate flow)."""

    # validate_address asks nothing of LetsExchange (our own rule): its answer says nothing of
    # whether LetsExchange is up, so it is neither metered nor held back by the breaker.
    checks_addresses_locally = True

    def __init__(
        self,
        name: str = "letsexchange",
        config: Mapping[str, Any] | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        max_inline_wait: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.name = name
        self.config: Mapping[str, Any] = config if config is not None else settings.PGP_EXCHANGES.get(name, {})
        self.base_url = str(self.config.get("url") or DEFAULT_URL).rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_inline_wait = max_inline_wait
        self.session = session or requests.Session()

    # --- the port --------------------------------------------------------------------------

    def supports(self, pair: ExchangePair) -> bool:
        return pair.source.key in LETSEXCHANGE_CODES and pair.target.key in LETSEXCHANGE_CODES and not pair.is_direct

    def minimum(self, pair: ExchangePair) -> Decimal:
        return self.amount_range(pair).minimum

    def amount_range(self, pair: ExchangePair) -> AmountRange:
        # "Get Coin Info" answers the pair's min_amount and max_amount with any quote.
        return _range_of(self._info(pair, RANGE_PROBE_AMOUNT))

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote:
        # "Get Coin Info" with "float": false: `amount` is already net of every fee.
        body = self._info(pair, from_amount)
        problem = _range_of(body).refuses(from_amount)
        if problem:
            raise ExchangeRefused(f"{self.name} {pair}: {problem}", kind=RefusalKind.OUT_OF_RANGE)
        rate_id = body.get("rate_id")
        if not isinstance(rate_id, str) or not rate_id:
            raise ExchangeBadResponse("a fixed-rate quote has no rate_id")
        return Quote(
            to_amount=_required_decimal(body, "amount"),
            rate_id=rate_id,
            valid_until=_milliseconds(body.get("rate_id_expired_at")),
        )

    def create(self, request: ExchangeRequest) -> CreatedExchange:
        # "Create Transaction", fixed rate: it needs the rate id of its quote ("Swap flow").
        if not request.rate_id:
            raise ExchangeRefused(
                f"{self.name}: a fixed-rate exchange needs the rate_id of its quote", kind=RefusalKind.RATE_EXPIRED
            )
        coin_from, network_from = _codes(request.pair.source)
        coin_to, network_to = _codes(request.pair.target)
        body = self._call(
            "POST",
            "/v1/transaction",
            inline_retries=False,
            json_body={
                "float": False,
                "coin_from": coin_from,
                "coin_to": coin_to,
                "network_from": network_from,
                "network_to": network_to,
                "deposit_amount": request.from_amount,
                "withdrawal": request.payout_address,
                # "A request without this field is not allowed": sent even when empty.
                "withdrawal_extra_id": request.payout_extra_id,
                "return": request.refund_address,
                "return_extra_id": "",
                "rate_id": request.rate_id,
                "affiliate_id": str(self.config.get("affiliate_id", "")),
                # Where LetsExchange's support writes about this exchange (a hold, a refund).
                "email": str(self.config.get("contact_email", "")),
            },
        )
        for key in ("transaction_id", "deposit"):
            if not body.get(key):
                raise ExchangeBadResponse(f"created transaction has no {key}")
        if body.get("deposit_extra_id"):
            # Our host payment cannot carry a deposit memo, and a deposit without it is lost: the
            # unfunded exchange is left to expire.
            raise ExchangeRefused(
                f"{self.name} asks for a deposit extra id on {request.pair.source.id}, which we cannot send",
                kind=RefusalKind.PAIR_UNAVAILABLE,
            )
        return CreatedExchange(
            id=str(body["transaction_id"]),
            from_amount=_required_decimal(body, "deposit_amount"),
            to_amount=_required_decimal(body, "withdrawal_amount"),
            payin_address=str(body["deposit"]),
            payout_address=str(body.get("withdrawal") or ""),
            pair=_reported_pair(body),
            payout_extra_id=str(body.get("withdrawal_extra_id") or ""),
        )

    def status(self, exchange: ExchangeRef) -> ExchangeState:
        # "Get Transaction Info".
        if not _TRANSACTION_ID.match(exchange.id):
            raise ExchangeRefused(f"{exchange.id!r} is not a LetsExchange transaction id", kind=RefusalKind.NOT_FOUND)
        body = self._call("GET", f"/v1/transaction/{quote(exchange.id)}")
        if not body.get("status"):
            raise ExchangeBadResponse("transaction has no status")
        provider_status = str(body["status"])
        status = STATUSES.get(provider_status, ExchangeStatus.UNKNOWN)
        return ExchangeState(
            id=str(body.get("transaction_id") or exchange.id),
            status=status,
            provider_status=provider_status,
            amount_from=_decimal(body.get("real_deposit_amount")),
            amount_to=_paid(body, finished=status == ExchangeStatus.FINISHED),
            payin_hash=str(body.get("hash_in") or ""),
            payout_hash=str(body.get("hash_out") or ""),
            refund_hash=str(body.get("return_hash") or ""),
            payout_address=str(body.get("withdrawal") or ""),
        )

    def validate_address(self, receiving: Asset, address: str) -> AddressCheck:
        # No address-validation call in the reference: EVM addresses are checked by our own rule.
        if address_format(receiving.chain) != AddressFormat.EVM:
            return AddressCheck(
                valid=False, message=f"{self.name} has no address check for {receiving.id}", checked=False
            )
        problem = address_problem(address, receiving.chain)
        return AddressCheck(valid=problem is None, message=problem or "")

    # --- calls ---------------------------------------------------------------------------------

    def _info(self, pair: ExchangePair, amount: Decimal) -> dict[str, Any]:
        coin_from, network_from = _codes(pair.source)
        coin_to, network_to = _codes(pair.target)
        return self._call(
            "POST",
            "/v1/info",
            json_body={
                "from": coin_from,
                "to": coin_to,
                "network_from": network_from,
                "network_to": network_to,
                "amount": amount,
                "float": False,
                "affiliate_id": str(self.config.get("affiliate_id", "")),
            },
        )

    # --- transport -------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, json_body: dict[str, Any] | None = None, inline_retries: bool = True
    ) -> dict[str, Any]:
        url = self.base_url + path
        data = _encode(json_body) if json_body is not None else None
        last_error: ExchangeUnavailable | None = None
        attempts = self.max_attempts if inline_retries else 1
        for attempt in range(1, attempts + 1):
            wait = full_jitter(self.backoff_base, attempt)
            headers = {"Authorization": f"Bearer {read_api_key(self.config)}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_error = ExchangeUnavailable(f"{self.name} {method} {path}: {type(exc).__name__}")
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    retry_after = retry_after_seconds(response)
                    last_error = ExchangeUnavailable(
                        f"{self.name} {method} {path}: HTTP {status}",
                        retry_after=retry_after,
                        http_status=status,
                    )
                    if retry_after is not None:
                        wait = retry_after
                elif status in (401, 403):
                    raise _unauthorized(self.name, method, path, response)
                elif status >= 400:
                    message = _error_message(response)
                    kind = RefusalKind.NOT_FOUND if status == 404 else _refusal_kind(message)
                    raise ExchangeRefused(
                        f"{self.name} {method} {path}: HTTP {status}: {message}", kind=kind, http_status=status
                    )
                else:
                    return json_object(response, f"{method} {path}")
            logger.warning("%s (attempt %s/%s)", last_error, attempt, attempts)
            if attempt == attempts or wait > self.max_inline_wait:
                break
            time.sleep(wait)
        assert last_error is not None
        raise last_error


def _unauthorized(provider: str, method: str, path: str, response: requests.Response) -> ExchangeUnauthorized:
    """Alert (the line names the call, never the key; throttled per process: a refused key
    concerns every batch at once) and return the wait to raise."""
    alert(
        EXCHANGE_UNAUTHORIZED,
        Subject("exchange_provider", provider),
        provider=provider,
        call=f"{method} {path}",
        http=response.status_code,
        error=_error_message(response)[:100] or "-",
    )
    return ExchangeUnauthorized(
        f"{provider} {method} {path}: HTTP {response.status_code}: API key refused", http_status=response.status_code
    )


def _refusal_kind(message: str) -> RefusalKind:
    text = message.lower()
    for words, kind in REFUSAL_WORDS:
        if any(word in text for word in words):
            if kind == RefusalKind.RATE_EXPIRED and not ("expired" in text or "not found" in text):
                continue  # a message about the rate that is not its expiry
            return kind
    return RefusalKind.OTHER


def _encode(fields: Mapping[str, Any]) -> bytes:
    """A flat JSON object with each Decimal written as the exact number literal (the reference's
    request amounts are numbers; json.dumps would need a float for that)."""
    parts = []
    for key, value in fields.items():
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{key} is not a finite amount")
            literal = format(value, "f")
        else:
            literal = json.dumps(value)
        parts.append(f"{json.dumps(key)}:{literal}")
    return ("{" + ",".join(parts) + "}").encode()


def _error_message(response: requests.Response) -> str:
    try:
        body = json.loads(response.text)
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        error = body.get("error", body.get("message", ""))
        return (error if isinstance(error, str) else json.dumps(error))[:500]
    return ""


def _decimal(value: Any) -> Decimal | None:
    """An amount as LetsExchange writes it (a string, or a number read as Decimal); "" is none."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ExchangeBadResponse(f"amount {value!r} is not a number")
    try:
        amount = Decimal(value)
    except ArithmeticError as exc:
        raise ExchangeBadResponse(f"amount {value!r} is not a number") from exc
    if not amount.is_finite() or amount < 0:
        raise ExchangeBadResponse(f"amount {value!r} is not a non-negative number")
    return amount


def _required_decimal(body: Mapping[str, Any], key: str) -> Decimal:
    value = _decimal(body.get(key))
    if value is None:
        raise ExchangeBadResponse(f"response has no {key}")
    return value


def _range_of(body: Mapping[str, Any]) -> AmountRange:
    return AmountRange(minimum=_required_decimal(body, "min_amount"), maximum=_decimal(body.get("max_amount")))


def _paid(body: Mapping[str, Any], *, finished: bool) -> Decimal | None:
    """What the payee received: `real_withdrawal_amount` (recalculated at the fixed rate on what
    arrived). Finished without it, `withdrawal_amount` holds only if the deposit was the one
    expected; otherwise what was paid is unknown, and a guess must not be distributed."""
    real = _decimal(body.get("real_withdrawal_amount"))
    if real is not None or not finished:
        return real
    arrived = _decimal(body.get("real_deposit_amount"))
    if arrived is not None and arrived != _decimal(body.get("deposit_amount")):
        raise ExchangeBadResponse("finished on a different deposit but says no real_withdrawal_amount")
    return _required_decimal(body, "withdrawal_amount")


def _milliseconds(value: Any) -> datetime | None:
    """`rate_id_expired_at`: milliseconds since the epoch, as a string or a number."""
    if value is None or value == "":
        return None
    text = str(value)
    if not text.isdigit():
        raise ExchangeBadResponse(f"rate_id_expired_at {value!r} is not a millisecond timestamp")
    seconds, milliseconds = divmod(int(text), 1000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=milliseconds * 1000)


def _codes(known: Asset) -> tuple[str, str]:
    try:
        return LETSEXCHANGE_CODES[known.key]
    except KeyError:
        raise ExchangeRefused(f"LetsExchange has no code for {known.id}", kind=RefusalKind.PAIR_UNAVAILABLE) from None


def _asset_of(coin: Any, network: Any) -> Asset | None:
    """The registry asset LetsExchange's codes name (None: codes we do not know)."""
    if not (isinstance(coin, str) and isinstance(network, str)):
        return None
    for key, codes in LETSEXCHANGE_CODES.items():
        if codes == (coin.upper(), network.upper()):
            return ASSETS[key]
    return None


def _reported_pair(body: Mapping[str, Any]) -> ExchangePair | None:
    source = _asset_of(body.get("coin_from"), body.get("coin_from_network"))
    target = _asset_of(body.get("coin_to"), body.get("coin_to_network"))
    return ExchangePair(source, target) if source and target else None
