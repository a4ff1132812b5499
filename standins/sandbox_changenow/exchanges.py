"""Exchanges and fixed-rate quotes held in memory, and their ChangeNOW v2 JSON shapes.

The shapes are those of the response examples in ChangeNOW's API v2 documentation
(https://documenter.getpostman.com/view/8180765/SVfTPnM8): "Create exchange transaction" for the
creation answer, "Transaction status" for by-id (its `amountTo` is what was actually sent,
timestamps ISO 8601 in UTC with milliseconds).
"""

import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from standins.sandbox_changenow.assets import Asset

TERMINAL_STATUSES = frozenset({"finished", "failed", "refunded"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_timestamp(moment: datetime | None) -> str | None:
    """ChangeNOW's timestamp format: ISO 8601 in UTC with milliseconds and a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_exchange_id() -> str:
    return secrets.token_hex(7)  # ChangeNOW ids are 14 lowercase hex digits


@dataclass(frozen=True)
class Quote:
    """A fixed rate promised by estimated-amount (useRateId=true) until valid_until."""

    rate_id: str
    from_asset: Asset
    to_asset: Asset
    net_rate: Decimal
    valid_until: datetime


@dataclass(frozen=True)
class OnChainTransfer:
    """A transaction the sandbox signed: kept so a lost broadcast can be repeated byte for byte."""

    tx_hash: str
    raw_transaction: bytes
    purpose: str  # "payout" or "refund"
    broadcast_at: float = field(default_factory=time.monotonic)

    def seconds_since_broadcast(self) -> float:
        return time.monotonic() - self.broadcast_at

    def rebroadcast(self) -> "OnChainTransfer":
        """The same transfer, timed from a new broadcast."""
        return replace(self, broadcast_at=time.monotonic())


@dataclass(frozen=True)
class Deposit:
    tx_hash: str
    amount: Decimal
    block_number: int


@dataclass
class Exchange:
    id: str
    from_asset: Asset
    to_asset: Asset
    flow: str
    type: str
    net_rate: Decimal
    expected_amount_from: Decimal
    expected_amount_to: Decimal
    payin_address: str
    payout_address: str
    payout_extra_id: str | None
    refund_address: str | None
    refund_extra_id: str | None
    user_id: str | None
    rate_id: str | None
    valid_until: datetime | None
    outcome: str  # the terminal status this exchange heads for once funded (fault injection)
    contact_email: str | None = None  # as sent on creation; ChangeNOW never echoes it back
    # by-id reports amountTo this much above what the payout sent (fault injection)
    reported_amount_to_skew: Decimal = Decimal(0)
    reported_payout_hash: str | None = None  # by-id names this instead of the real payout (fault)
    # A fixed fee in to_asset taken from the payout, as a provider's network (withdrawal) fee; 0
    # for ChangeNOW's sandbox, whose fee is all in its rate.
    withdrawal_fee: Decimal = Decimal(0)
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    status: str = "new"
    status_entered: float = field(default_factory=time.monotonic)
    deposit: Deposit | None = None
    amount_from: Decimal | None = None
    amount_to: Decimal | None = None
    deposit_received_at: datetime | None = None
    payin_hash: str | None = None
    payout_hash: str | None = None
    refund_hash: str | None = None
    refund_amount: Decimal | None = None
    pending_transfer: OnChainTransfer | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def seconds_in_status(self) -> float:
        return time.monotonic() - self.status_entered

    def created_json(self) -> dict[str, Any]:
        """The body of `POST /v2/exchange`, as the v2 reference's "Create exchange transaction"
        shows it: no validUntil (the estimate said when its rate expires)."""
        return {
            "id": self.id,
            "fromAmount": self.expected_amount_from,
            "toAmount": self.expected_amount_to,
            "flow": self.flow,
            "type": self.type,
            "payinAddress": self.payin_address,
            "payoutAddress": self.payout_address,
            "payinExtraId": None,
            "payoutExtraId": self.payout_extra_id,
            "fromCurrency": self.from_asset.currency,
            "fromNetwork": self.from_asset.network,
            "toCurrency": self.to_asset.currency,
            "toNetwork": self.to_asset.network,
            "refundAddress": self.refund_address,
            "refundExtraId": self.refund_extra_id,
        }

    def status_json(self) -> dict[str, Any]:
        """The body of `GET /v2/exchange/by-id`, as the v2 reference's "Exchange status" shows it:
        no validUntil either."""
        return {
            "id": self.id,
            "status": self.status,
            "actionsAvailable": False,
            "fromCurrency": self.from_asset.currency,
            "fromNetwork": self.from_asset.network,
            "toCurrency": self.to_asset.currency,
            "toNetwork": self.to_asset.network,
            "expectedAmountFrom": self.expected_amount_from,
            "expectedAmountTo": self.expected_amount_to,
            "amountFrom": self.amount_from,
            "amountTo": None if self.amount_to is None else self.amount_to + self.reported_amount_to_skew,
            "payinAddress": self.payin_address,
            "payoutAddress": self.payout_address,
            "payinExtraId": None,
            "payoutExtraId": self.payout_extra_id,
            "refundAddress": self.refund_address,
            "refundExtraId": self.refund_extra_id,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
            "depositReceivedAt": iso_timestamp(self.deposit_received_at),
            "payinHash": self.payin_hash,
            "payoutHash": (self.reported_payout_hash or self.payout_hash) if self.payout_hash else None,
            "fromLegacyTicker": self.from_asset.legacy_ticker,
            "toLegacyTicker": self.to_asset.legacy_ticker,
            "refundHash": self.refund_hash,
            "refundAmount": self.refund_amount,
            "userId": self.user_id,
        }


class ExchangeStore:
    """All exchanges and quotes. Hold `lock` while reading or changing an exchange's fields."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._exchanges: dict[str, Exchange] = {}
        self._quotes: dict[str, Quote] = {}

    def add(self, exchange: Exchange) -> None:
        with self.lock:
            self._exchanges[exchange.id] = exchange

    def get(self, exchange_id: str) -> Exchange | None:
        with self.lock:
            return self._exchanges.get(exchange_id)

    def all(self) -> list[Exchange]:
        with self.lock:
            return list(self._exchanges.values())

    def active(self) -> list[Exchange]:
        with self.lock:
            return [exchange for exchange in self._exchanges.values() if not exchange.is_terminal]

    def add_quote(self, quote: Quote) -> None:
        with self.lock:
            now = utc_now()
            # Drop expired quotes so a long demo run does not grow without bound.
            self._quotes = {key: kept for key, kept in self._quotes.items() if kept.valid_until > now}
            self._quotes[quote.rate_id] = quote

    def get_quote(self, rate_id: str) -> Quote | None:
        with self.lock:
            quote = self._quotes.get(rate_id)
            return quote if quote is not None and quote.valid_until > utc_now() else None


def quote_valid_until(ttl_seconds: int) -> datetime:
    return utc_now() + timedelta(seconds=ttl_seconds)
