"""The LetsExchange API v1 calls the project uses, answered from the shared sandbox engine's
in-memory exchanges (standins.sandbox_changenow: exchanges, pricing, faults).

What each answer holds is what LetsExchange's API reference (https://api-doc.letsexchange.io)
shows for it: "Get Coin Info" (POST /api/v1/info,
https://api-doc.letsexchange.io/api-reference/endpoint/v1/coins/info), "Create Transaction" (POST
/api/v1/transaction, .../endpoint/v1/transaction/create-transaction) and "Get Transaction Info" (GET
/api/v1/transaction/{id}, .../endpoint/v1/transaction/get-transaction); the statuses are those of
"Transaction statuses" (https://api-doc.letsexchange.io/documentation/statuses). Amounts are JSON
strings there, and so they are here. The reference shows no error body but the 403 one
({"error": "..."}), so refusals here are 422 with {"error": message} in the sandbox's own words:
the adapter reads them by keyword, as it must read the real API's.

Each engine status (ChangeNOW's words) is answered in LetsExchange's: `STATUS_WORDS`.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_UP, Decimal, InvalidOperation, localcontext
from typing import Any

from eth_account import Account

from standins.sandbox_changenow.assets import ASSETS, Asset, address_problem
from standins.sandbox_changenow.exchanges import Exchange, ExchangeStore, Quote, quote_valid_until
from standins.sandbox_changenow.faults import Faults
from standins.sandbox_changenow.host import HttpError, Reply
from standins.sandbox_changenow.pricing import Pricing, amount_to, net_of_fixed_fee

# LetsExchange's coin and network codes (upper case, as "Basics" asks) for the engine's assets.
CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("ETH", "ETH"): ("eth", "eth"),
    ("USDT", "ERC20"): ("usdt", "eth"),
    ("USDT", "TRC20"): ("usdt", "trx"),
    ("USDC", "ERC20"): ("usdc", "eth"),
    ("BTC", "BTC"): ("btc", "btc"),
    ("LTC", "LTC"): ("ltc", "ltc"),
    ("TRX", "TRX"): ("trx", "trx"),
    ("BNB", "BEP20"): ("bnb", "bsc"),
    ("SOL", "SOL"): ("sol", "sol"),
    ("TON", "TON"): ("ton", "ton"),
    ("DOGE", "DOGE"): ("doge", "doge"),
    ("XRP", "XRP"): ("xrp", "xrp"),
}
_CODES_OF: dict[tuple[str, str], tuple[str, str]] = {engine: ours for ours, engine in CODES.items()}
COIN_NAMES = {"ETH": "Ethereum", "USDT": "TetherUS", "USDC": "USD Coin", "BTC": "Bitcoin", "TRX": "TRON"}

# The engine's statuses (ChangeNOW's words) in LetsExchange's ("Transaction statuses"): a held
# exchange is LetsExchange's AML hold, a failed one its error, a refunded one its refund.
STATUS_WORDS = {
    "new": "wait",
    "waiting": "wait",
    "confirming": "confirmation",
    "exchanging": "exchanging",
    "sending": "sending",
    "finished": "success",
    "failed": "error",
    "refunded": "refund",
    "verifying": "aml_check_failed",
}
_NEED_CONFIRMATIONS = 1


def refusal(message: str, status: int = 422) -> HttpError:
    return HttpError(Reply(status, {"error": message}))


@dataclass(frozen=True)
class Pair:
    source: Asset
    target: Asset


class LetsExchangeApi:
    def __init__(
        self,
        store: ExchangeStore,
        faults: Faults,
        pricing: Pricing,
        *,
        withdrawal_fee_usd: Decimal,
        rate_id_ttl_seconds: int,
    ) -> None:
        self._store = store
        self._faults = faults
        self._pricing = pricing
        self._withdrawal_fee_usd = withdrawal_fee_usd
        self._rate_id_ttl_seconds = rate_id_ttl_seconds

    def reprice(self, fee_percent: Decimal, withdrawal_fee_usd: Decimal) -> None:
        """Quote from now on with this fee in the rate and this fixed withdrawal fee (a fixed rate
        already given keeps its own)."""
        self._pricing = replace(self._pricing, fee_percent=fee_percent)
        self._withdrawal_fee_usd = withdrawal_fee_usd

    def prices(self) -> dict[str, Decimal]:
        return {"fee_percent": self._pricing.fee_percent, "withdrawal_fee_usd": self._withdrawal_fee_usd}

    # POST /api/v1/info ("Get Coin Info"): the rate, the final amount the user receives (after
    # the withdrawal fee, which is also given on its own), the pair's minimum and maximum, and for
    # the fixed flow ("float": false) a rate_id with rate_id_expired_at in milliseconds.
    def info(self, body: Any) -> dict[str, Any]:
        fields = _object(body)
        pair = self._pair(fields, "from", "to")
        amount = parse_amount("amount", fields.get("amount"))
        fixed = fields.get("float", True) is False
        net_rate = self._pricing.net_rate(pair.source, pair.target)
        fee = self._withdrawal_fee(pair.target)
        rate_id: str | None = None
        expires: int | None = None
        if fixed:
            quote = Quote(
                secrets.token_hex(16),
                pair.source,
                pair.target,
                net_rate,
                quote_valid_until(self._faults.take_quote_ttl(self._rate_id_ttl_seconds)),
            )
            self._store.add_quote(quote)
            rate_id, expires = quote.rate_id, _milliseconds(quote.valid_until)
        maximum = self._maximum(pair.source)
        return {
            "min_amount": _text(self._pricing.min_amount(pair.source)),
            "max_amount": _text(maximum) if maximum is not None else None,
            "amount": _text(net_of_fixed_fee(amount_to(amount, net_rate, pair.target), fee)),
            "fee": "0",
            "rate": _text(net_rate.quantize(Decimal("1E-15"))),
            "profit": None,
            "withdrawal_fee": _text(fee),
            "rate_id": rate_id,
            "rate_id_expired_at": str(expires) if expires is not None else None,
        }

    # POST /api/v1/transaction ("Create Transaction"): a fixed-rate exchange needs the rate_id of
    # an info answer ("Swap flow": "For a fixed rate, you must first calculate the pair's rate and
    # send the rate id").
    def create_transaction(self, body: Any) -> dict[str, Any]:
        fields = _object(body)
        pair = self._pair(fields, "coin_from", "coin_to")
        deposit_amount = parse_amount("deposit_amount", fields.get("deposit_amount"))
        withdrawal = _string(fields, "withdrawal")
        if not withdrawal:
            raise refusal("The withdrawal field is required.")
        if "withdrawal_extra_id" not in fields:
            raise refusal(
                "The withdrawal_extra_id field must be present."
            )  # "A request without this field is not allowed."
        if problem := address_problem(pair.target, withdrawal):
            raise refusal(f"Invalid withdrawal address: {problem}")
        refund_address = _string(fields, "return") or None
        if refund_address and (problem := address_problem(pair.source, refund_address)):
            raise refusal(f"Invalid return address: {problem}")
        self._check_range(pair.source, deposit_amount)
        net_rate = self._pricing.net_rate(pair.source, pair.target)
        valid_until: datetime | None = None
        rate_id = _string(fields, "rate_id") or None
        fixed = fields.get("float", True) is False
        if fixed:
            if not rate_id:
                raise refusal("The rate_id field is required for a fixed rate.")
            quote = self._store.get_quote(rate_id)
            if quote is None or (quote.from_asset, quote.to_asset) != (pair.source, pair.target):
                raise refusal("Rate is expired or not found, request a new rate_id.")
            net_rate, valid_until = quote.net_rate, quote.valid_until

        # Faults are taken only now, so a refused request does not use them up.
        skew, outcome = self._faults.take_from_amount_skew(), self._faults.take_next_outcome()
        fee = self._withdrawal_fee(pair.target)
        exchange = Exchange(
            id=secrets.token_hex(7)[:13],  # LetsExchange's ids are 13 hex digits ("599cd4bb4d4a5")
            from_asset=pair.source,
            to_asset=pair.target,
            flow="fixed-rate" if fixed else "standard",
            type="direct",
            net_rate=net_rate,
            expected_amount_from=deposit_amount + skew,
            expected_amount_to=net_of_fixed_fee(amount_to(deposit_amount, net_rate, pair.target), fee),
            # A fresh address per exchange; refunds are paid from the treasury, so its key is not kept.
            payin_address=Account.create().address,
            payout_address=withdrawal,
            payout_extra_id=_string(fields, "withdrawal_extra_id") or None,
            refund_address=refund_address,
            refund_extra_id=_string(fields, "return_extra_id") or None,
            user_id=None,
            rate_id=rate_id,
            valid_until=valid_until,
            outcome=outcome,
            contact_email=_string(fields, "email") or None,
            reported_amount_to_skew=self._faults.take_reported_amount_to_skew(),
            reported_payout_hash=self._faults.take_reported_payout_hash(),
            withdrawal_fee=fee,
        )
        self._store.add(exchange)
        with self._store.lock:
            answer = transaction_json(exchange, created=True)
        misreported = self._faults.take_answer_payout_address()
        if misreported:
            answer["withdrawal"] = misreported
        return answer

    # GET /api/v1/transaction/{id} ("Get Transaction Info").
    def transaction(self, transaction_id: str) -> dict[str, Any]:
        exchange = self._store.get(transaction_id)
        if exchange is None:
            raise refusal("Transaction not found.", 404)
        with self._store.lock:
            return transaction_json(exchange, created=False)

    # --- shared checks ---------------------------------------------------------------------------

    def _pair(self, fields: Mapping[str, Any], from_key: str, to_key: str) -> Pair:
        source = _asset(fields, from_key, "network_from")
        target = _asset(fields, to_key, "network_to")
        if not self._pricing.supports(source, target):
            raise refusal("This pair is not available.")
        return Pair(source, target)

    def _withdrawal_fee(self, target: Asset) -> Decimal:
        """The fixed network fee taken from the payout: withdrawal_fee_usd worth of the asset paid,
        rounded up to its precision."""
        with localcontext() as context:
            context.prec = 40
            fee = self._withdrawal_fee_usd / self._pricing.usd_prices[target.currency]
        return fee.quantize(target.quantum, rounding=ROUND_UP)

    def _maximum(self, asset: Asset) -> Decimal | None:
        return self._pricing.max_amount(asset, self._faults.max_amount_usd())

    def _check_range(self, asset: Asset, amount: Decimal) -> None:
        minimum = self._pricing.min_amount(asset)
        if amount < minimum:
            raise refusal(f"The deposit amount is less than the minimum amount {_text(minimum)}.")
        maximum = self._maximum(asset)
        if maximum is not None and amount > maximum:
            raise refusal(f"The deposit amount is more than the maximum amount {_text(maximum)}.")


def transaction_json(exchange: Exchange, *, created: bool) -> dict[str, Any]:
    """A transaction as "Create Transaction" (created=True) or "Get Transaction Info" shows it."""
    coin_from, network_from = _CODES_OF[exchange.from_asset.key]
    coin_to, network_to = _CODES_OF[exchange.to_asset.key]
    body: dict[str, Any] = {
        "transaction_id": exchange.id,
        "status": STATUS_WORDS.get(exchange.status, exchange.status),
        "coin_from": coin_from,
        "coin_from_name": COIN_NAMES.get(coin_from, coin_from),
        "coin_from_network": network_from,
        "coin_to": coin_to,
        "coin_to_name": COIN_NAMES.get(coin_to, coin_to),
        "coin_to_network": network_to,
        "deposit_amount": _text(exchange.expected_amount_from),
        "withdrawal_amount": _text(exchange.expected_amount_to),
        "deposit": exchange.payin_address,
        "deposit_extra_id": None,
        "withdrawal": exchange.payout_address,
        "withdrawal_extra_id": exchange.payout_extra_id or "",
        "rate": _text(exchange.net_rate.quantize(Decimal("1E-15"))),
        "fee": "0",
        "return": exchange.refund_address or "",
        "return_hash": exchange.refund_hash or "",
        "return_amount": _text(exchange.refund_amount) if exchange.refund_amount is not None else "",
        "return_extra_id": exchange.refund_extra_id or "",
        "is_float": exchange.flow != "fixed-rate",
        "need_confirmations": _NEED_CONFIRMATIONS,
    }
    if created:
        return body
    paid = exchange.amount_to
    reported_paid = None if paid is None else paid + exchange.reported_amount_to_skew
    payout_hash = (exchange.reported_payout_hash or exchange.payout_hash) if exchange.payout_hash else None
    return {
        **body,
        "real_deposit_amount": _text(exchange.amount_from) if exchange.amount_from is not None else "",
        "real_withdrawal_amount": _text(reported_paid) if reported_paid is not None else "",
        "hash_in": exchange.payin_hash or "",
        "hash_out": payout_hash or "",
        "confirmations": _NEED_CONFIRMATIONS if exchange.payin_hash else 0,
        "execution_time": 0,
        "profit": None,
        "aml_error_signals": [] if exchange.status != "verifying" else [{"signal": "sandbox", "level": 4}],
    }


def parse_amount(name: str, raw: Any) -> Decimal:
    """A positive, finite amount from a JSON string or number (read as Decimal)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal) or raw == "":
        raise refusal(f"The {name} field is required and must be a number.")
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation as error:
        raise refusal(f"The {name} field must be a number.") from error
    if not amount.is_finite() or amount <= 0:
        raise refusal(f"The {name} field must be a positive number.")
    return amount


def _asset(fields: Mapping[str, Any], coin_key: str, network_key: str) -> Asset:
    coin, network = _string(fields, coin_key).upper(), _string(fields, network_key).upper()
    if not coin or not network:
        raise refusal(f"The {coin_key} and {network_key} fields are required.")
    engine_key = CODES.get((coin, network))
    if engine_key is None or engine_key not in ASSETS:
        raise refusal("This pair is not available.")
    return ASSETS[engine_key]


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise refusal("The body must be a JSON object.")
    return body


def _string(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise refusal(f"The {name} field must be a string.")
    return value.strip()


def _text(amount: Decimal) -> str:
    """An amount as LetsExchange writes it: a string, no exponent, no trailing zeros."""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
