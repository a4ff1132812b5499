"""The ChangeNOW API v2 endpoints the project uses, answered from the in-memory exchange store.

Each endpoint takes the parsed query or body and returns the JSON body, or raises ApiError with
ChangeNOW's error shape. Nothing here knows about HTTP plumbing or the chain.

Sections of ChangeNOW's API v2 documentation (https://documenter.getpostman.com/view/8180765/SVfTPnM8)
behind them: "Minimal exchange amount" (GET /v2/exchange/min-amount), "Exchange range" (GET
/v2/exchange/range), "Estimated exchange amount" (GET /v2/exchange/estimated-amount, flow
fixed-rate with useRateId), "Create exchange transaction" (POST /v2/exchange), "Transaction
status" (GET /v2/exchange/by-id?id=), "Address validation" (GET /v2/validate/address); errors as
the JSON object {"error": code, "message": text} those pages show. Each answer holds what its
section names, as noted below.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_account import Account

from standins.sandbox_changenow.assets import Asset, address_problem, resolve_asset
from standins.sandbox_changenow.exchanges import (
    Exchange,
    ExchangeStore,
    Quote,
    iso_timestamp,
    new_exchange_id,
    quote_valid_until,
)
from standins.sandbox_changenow.faults import Faults
from standins.sandbox_changenow.pricing import Pricing, amount_to

FLOWS = ("standard", "fixed-rate")
TRANSACTION_SPEED_FORECAST = "10-60"  # minutes, the string ChangeNOW reports


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


def bad_params(message: str) -> ApiError:
    return ApiError(400, "not_valid_params", message)


@dataclass(frozen=True)
class Pair:
    from_asset: Asset
    to_asset: Asset
    flow: str

    def names(self) -> dict[str, Any]:
        return {
            "fromCurrency": self.from_asset.currency,
            "fromNetwork": self.from_asset.network,
            "toCurrency": self.to_asset.currency,
            "toNetwork": self.to_asset.network,
            "flow": self.flow,
        }


class ChangeNowApi:
    def __init__(self, store: ExchangeStore, faults: Faults, pricing: Pricing, rate_id_ttl_seconds: int) -> None:
        self._store = store
        self._faults = faults
        self._pricing = pricing
        self._rate_id_ttl_seconds = rate_id_ttl_seconds

    def reprice(self, fee_percent: Decimal) -> None:
        """Quote with this fee from now on (a fixed rate already given keeps its own)."""
        self._pricing = replace(self._pricing, fee_percent=fee_percent)

    # GET /v2/exchange/min-amount
    def min_amount(self, query: Mapping[str, str]) -> dict[str, Any]:
        pair = self._pair(query)
        return {**pair.names(), "minAmount": self._pricing.min_amount(pair.from_asset)}

    # GET /v2/exchange/range ("Exchange range"): the pair, the flow, minAmount and maxAmount (null
    # when there is none) of the asset sent.
    def exchange_range(self, query: Mapping[str, str]) -> dict[str, Any]:
        pair = self._pair(query)
        return {
            **pair.names(),
            "minAmount": self._pricing.min_amount(pair.from_asset),
            "maxAmount": self._max_amount(pair.from_asset),
        }

    # GET /v2/exchange/estimated-amount ("Estimated exchange amount"): with flow=fixed-rate and
    # useRateId=true, the rateId to create the exchange with and the validUntil of that rate. The
    # only answer that carries validUntil: create and by-id do not.
    def estimated_amount(self, query: Mapping[str, str]) -> dict[str, Any]:
        pair = self._pair(query)
        if query.get("type", "direct") != "direct" or not query.get("fromAmount"):
            raise bad_params("fromAmount is required (reverse estimates are not supported by the sandbox)")
        from_amount = parse_amount("fromAmount", query["fromAmount"])
        self._check_range(pair.from_asset, from_amount)
        net_rate = self._pricing.net_rate(pair.from_asset, pair.to_asset)
        rate_id = valid_until = None
        if pair.flow == "fixed-rate" and query.get("useRateId", "").lower() == "true":
            quote = Quote(
                secrets.token_urlsafe(24),
                pair.from_asset,
                pair.to_asset,
                net_rate,
                quote_valid_until(self._faults.take_quote_ttl(self._rate_id_ttl_seconds)),
            )
            self._store.add_quote(quote)
            rate_id, valid_until = quote.rate_id, quote.valid_until
        return {
            **pair.names(),
            "type": "direct",
            "rateId": rate_id,
            "validUntil": iso_timestamp(valid_until),
            "transactionSpeedForecast": TRANSACTION_SPEED_FORECAST,
            "warningMessage": None,
            "depositFee": Decimal(0),
            "withdrawalFee": Decimal(0),
            "userId": None,
            "fromAmount": from_amount,
            "toAmount": amount_to(from_amount, net_rate, pair.to_asset),
        }

    # POST /v2/exchange ("Create exchange transaction"): no validUntil in the answer.
    def create_exchange(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_params("the body must be a JSON object")
        fields = {key: ("" if value is None else value) for key, value in body.items()}
        pair = self._pair(fields)
        if fields.get("type", "direct") not in ("", "direct"):
            raise bad_params("only type=direct is supported by the sandbox")
        from_amount = parse_amount("fromAmount", fields.get("fromAmount"))
        payout_address = _text(fields, "address")
        if not payout_address:
            raise bad_params("address is required")
        problem = address_problem(pair.to_asset, payout_address)
        if problem:
            raise ApiError(400, "not_valid_address", f"{problem}: {payout_address}")
        refund_address = _text(fields, "refundAddress") or None
        if refund_address and (problem := address_problem(pair.from_asset, refund_address)):
            raise ApiError(400, "not_valid_refund_address", f"{problem}: {refund_address}")
        self._check_range(pair.from_asset, from_amount)
        net_rate, valid_until = self._pricing.net_rate(pair.from_asset, pair.to_asset), None
        rate_id = _text(fields, "rateId") or None
        if pair.flow == "fixed-rate":
            valid_until = quote_valid_until(self._rate_id_ttl_seconds)
            if rate_id:
                quote = self._store.get_quote(rate_id)
                if quote is None or (quote.from_asset, quote.to_asset) != (pair.from_asset, pair.to_asset):
                    raise ApiError(400, "rate_id_not_found_or_expired", "Rate id not found or expired")
                net_rate, valid_until = quote.net_rate, quote.valid_until

        # Faults are taken only now, so a rejected request does not use them up.
        skew, outcome = self._faults.take_from_amount_skew(), self._faults.take_next_outcome()
        reported_skew = self._faults.take_reported_amount_to_skew()
        exchange = Exchange(
            id=new_exchange_id(),
            from_asset=pair.from_asset,
            to_asset=pair.to_asset,
            flow=pair.flow,
            type="direct",
            net_rate=net_rate,
            expected_amount_from=from_amount + skew,
            expected_amount_to=amount_to(from_amount, net_rate, pair.to_asset),
            # A fresh address per exchange, as ChangeNOW gives; the key is thrown away because
            # refunds are paid from the treasury, so the payin address never has to send.
            payin_address=Account.create().address,
            payout_address=payout_address,
            payout_extra_id=_text(fields, "extraId") or None,
            refund_address=refund_address,
            refund_extra_id=_text(fields, "refundExtraId") or None,
            user_id=_text(fields, "userId") or None,
            rate_id=rate_id,
            valid_until=valid_until,
            outcome=outcome,
            contact_email=_text(fields, "contactEmail") or None,
            reported_amount_to_skew=reported_skew,
            reported_payout_hash=self._faults.take_reported_payout_hash(),
        )
        self._store.add(exchange)
        answer = exchange.created_json()
        misreported = self._faults.take_answer_payout_address()
        if misreported:
            answer["payoutAddress"] = misreported
        return answer

    # GET /v2/exchange/by-id ("Exchange status"): no validUntil in the answer.
    def exchange_by_id(self, query: Mapping[str, str]) -> dict[str, Any]:
        exchange_id = query.get("id", "").strip()
        if not exchange_id:
            raise bad_params("id is required")
        exchange = self._store.get(exchange_id)
        if exchange is None:
            raise ApiError(404, "exchange_not_found", f"Exchange {exchange_id} not found")
        with self._store.lock:
            return exchange.status_json()

    # GET /v2/validate/address
    def validate_address(self, query: Mapping[str, str]) -> dict[str, Any]:
        address = query.get("address", "").strip()
        if not query.get("currency") or not address:
            raise bad_params("currency and address are required")
        asset = resolve_asset(query.get("currency"), query.get("network"))
        if asset is None:
            raise bad_params(f"unknown currency {query.get('currency')}")
        problem = address_problem(asset, address)
        return {"result": problem is None, "message": problem}

    # --- shared checks --------------------------------------------------------------------

    def _pair(self, params: Mapping[str, Any]) -> Pair:
        for name in ("fromCurrency", "toCurrency"):
            if not _text(params, name):
                raise bad_params(f"{name} is required")
        flow = _text(params, "flow") or "standard"
        if flow not in FLOWS:
            raise bad_params(f"flow must be one of {', '.join(FLOWS)}")
        from_asset = resolve_asset(_text(params, "fromCurrency"), _text(params, "fromNetwork"))
        to_asset = resolve_asset(_text(params, "toCurrency"), _text(params, "toNetwork"))
        if from_asset is None or to_asset is None or not self._pricing.supports(from_asset, to_asset):
            raise ApiError(400, "pair_is_inactive", "This pair is not available in the sandbox")
        return Pair(from_asset, to_asset, flow)

    def _max_amount(self, asset: Asset) -> Decimal | None:
        return self._pricing.max_amount(asset, self._faults.max_amount_usd())

    def _check_range(self, asset: Asset, amount: Decimal) -> None:
        # "Errors": an amount outside the pair's range is refused with out_of_range.
        minimum = self._pricing.min_amount(asset)
        if amount < minimum:
            raise ApiError(400, "out_of_range", f"Amount is less than minimal: {minimum} {asset.currency}")
        maximum = self._max_amount(asset)
        if maximum is not None and amount > maximum:
            raise ApiError(400, "out_of_range", f"Amount is more than maximal: {maximum} {asset.currency}")


def parse_amount(name: str, raw: Any) -> Decimal:
    """A positive, finite amount from a query string, a JSON string, or a JSON number (Decimal)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal) or raw == "":
        raise bad_params(f"{name} is required and must be a number")
    try:
        amount = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation as error:
        raise bad_params(f"{name} must be a number") from error
    if not amount.is_finite() or amount <= 0:
        raise bad_params(f"{name} must be a positive number")
    return amount


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name, "")
    if not isinstance(value, str):
        raise bad_params(f"{name} must be a string")
    return value.strip()
