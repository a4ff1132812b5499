"""The exchange-provider port: what the batch flows need from whoever turns one asset into another
and pays it out. Adapters (ChangeNOW, the direct transfer, a stand-in) speak their own API and
answer with the normalised types below, so the flows never compare a provider's status strings.
Assets are the registry's (integrations.assets): each adapter maps them to its own codes, and
says which pairs it `supports`.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from integrations.assets import Asset
from pgp_project.operations.transient import TransientError


@dataclass(frozen=True)
class ExchangePair:
    """What is sold (`source`) and what the payee receives (`target`), as registry assets."""

    source: Asset
    target: Asset

    @property
    def is_direct(self) -> bool:
        """Same asset on both sides: nothing to exchange, the host payment pays the payee."""
        return self.source.key == self.target.key

    def __str__(self) -> str:
        return f"{self.source.id}->{self.target.id}"


class ExchangeStatus(StrEnum):
    AWAITING_DEPOSIT = "awaiting_deposit"  # created, waits for our deposit: the only state to fund
    CONFIRMING = "confirming"  # the deposit arrived and is being confirmed
    VERIFYING = "verifying"  # held by the provider's checks
    EXCHANGING = "exchanging"
    SENDING = "sending"
    FINISHED = "finished"  # paid out; amount_to is what the payee received
    FAILED = "failed"
    REFUNDED = "refunded"
    UNKNOWN = "unknown"  # a status the adapter does not know: not terminal, and worth an alert


@dataclass(frozen=True)
class Quote:
    # What the payee receives for the amount quoted, net of every fee the provider takes: the
    # figure routing compares between providers.
    to_amount: Decimal
    rate_id: str | None  # a fixed rate to create the exchange with, when the provider gives one
    # When that fixed rate expires, when the provider says: the exchange created with it takes a
    # deposit at that rate only until then.
    valid_until: datetime | None = None


@dataclass(frozen=True)
class AmountRange:
    """How much of the pair's first asset one exchange takes: at least `minimum`, at most
    `maximum` (None: the provider sets no maximum)."""

    minimum: Decimal
    maximum: Decimal | None = None

    def refuses(self, amount: Decimal) -> str:
        """Why `amount` is outside the range ("" when inside)."""
        if amount < self.minimum:
            return f"{amount} is under the minimum {self.minimum}"
        if self.maximum is not None and amount > self.maximum:
            return f"{amount} is over the maximum {self.maximum}"
        return ""


@dataclass(frozen=True)
class ExchangeRequest:
    pair: ExchangePair
    from_amount: Decimal
    payout_address: str
    refund_address: str
    rate_id: str | None
    reference: str  # ours, unique per batch ("conversion-12"): lets an adapter be idempotent
    payout_extra_id: str = ""  # the payout address's memo or destination tag (ChangeNOW's extraId)


@dataclass(frozen=True)
class CreatedExchange:
    id: str
    from_amount: Decimal  # exactly what must be deposited
    to_amount: Decimal  # the provider's estimate of what the payee receives
    payin_address: str
    payout_address: str
    pair: ExchangePair | None = None  # the pair as the provider recorded it, when it says
    valid_until: datetime | None = None  # when its fixed rate expires, when it has one
    payout_extra_id: str = ""  # the memo or destination tag as the provider recorded it


@dataclass(frozen=True)
class ExchangeRef:
    """What we know of an exchange we created: its id, where and how much we deposit, and the
    deposit's transaction once it exists."""

    id: str
    payin_address: str = ""
    from_amount: Decimal | None = None
    deposit_tx_hash: str | None = None
    deposit_confirmed: bool = False  # our host payment to the payin address is confirmed on chain


@dataclass(frozen=True)
class ExchangeState:
    id: str
    status: ExchangeStatus
    provider_status: str  # the provider's own word, for operators
    amount_from: Decimal | None = None
    amount_to: Decimal | None = None  # what the payee actually received, once finished
    payin_hash: str = ""
    payout_hash: str = ""
    refund_hash: str = ""
    valid_until: datetime | None = None  # when its fixed rate expires, when it has one
    payout_address: str = ""  # where it pays out, as the provider recorded it (when it says)


@dataclass(frozen=True)
class AddressCheck:
    valid: bool
    message: str = ""
    # False: this provider cannot check addresses of that asset (it has no such call): neither a
    # yes nor a no, and no failure of the provider; routing asks the next one.
    checked: bool = True


class RefusalKind(StrEnum):
    OUT_OF_RANGE = "out_of_range"  # below the minimum (or above the maximum) for the pair
    RATE_EXPIRED = "rate_expired"  # the fixed rate id is unknown or expired
    INVALID_ADDRESS = "invalid_address"
    PAIR_UNAVAILABLE = "pair_unavailable"
    NOT_FOUND = "not_found"
    OTHER = "other"


class ExchangeError(Exception):
    """Base of every exchange failure; the message never contains a credential."""

    def __init__(self, message: str, *, code: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.provider = ""  # who failed, set by the metering every provider is reached through


class ExchangeRefused(ExchangeError):
    """The provider refused this request as it stands; sending it again unchanged cannot help."""

    def __init__(self, message: str, *, kind: RefusalKind = RefusalKind.OTHER, **details: object) -> None:
        super().__init__(message, **details)  # type: ignore[arg-type]
        self.kind = kind


class ExchangeUnavailable(ExchangeError, TransientError):
    """Rate-limited, down, slow or unreachable: try again later (`retry_after` when it said)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **details: object) -> None:
        ExchangeError.__init__(self, message, **details)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ExchangeUnauthorized(ExchangeUnavailable):
    """The provider refused our credentials (a bad or rotated API key): nothing about the batch
    is wrong, so it waits, with an alert, until an operator puts the right key in place."""


class ExchangeBadResponse(ExchangeError, TransientError):
    """A success whose body is not what the provider documents."""


class ExchangeProvider(Protocol):
    """One way of exchanging and paying out. `name` is what a batch stores in exchange_provider."""

    name: str

    def supports(self, pair: ExchangePair) -> bool:
        """Whether it exchanges this pair at all (its own codes know both assets)."""
        ...

    def minimum(self, pair: ExchangePair) -> Decimal: ...

    def amount_range(self, pair: ExchangePair) -> AmountRange: ...

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote: ...

    def create(self, request: ExchangeRequest) -> CreatedExchange: ...

    def status(self, exchange: ExchangeRef) -> ExchangeState: ...

    def validate_address(self, asset: Asset, address: str) -> AddressCheck: ...
