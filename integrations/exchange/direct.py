"""The direct transfer, as an exchange provider: when the payee wants exactly the asset we hold
(USDT to a USDT wallet on the chain we hold it on, say), nothing is exchanged. The host payment pays the
payee's address itself, so this "exchange" takes its deposit there and is finished, with the
amount deposited, once that deposit exists. Neither ChangeNOW nor anyone else is asked."""

from decimal import Decimal

from integrations.addresses import address_problem
from integrations.assets import Asset

from .port import (
    AddressCheck,
    AmountRange,
    CreatedExchange,
    ExchangePair,
    ExchangeRef,
    ExchangeRefused,
    ExchangeRequest,
    ExchangeState,
    ExchangeStatus,
    Quote,
    RefusalKind,
)

ID_PREFIX = "direct-"


class DirectTransfer:
    def __init__(self, name: str = "direct", config: object = None) -> None:
        self.name = name

    def supports(self, pair: ExchangePair) -> bool:
        return pair.is_direct

    def minimum(self, pair: ExchangePair) -> Decimal:
        self._require_same_asset(pair)
        return Decimal(0)

    def amount_range(self, pair: ExchangePair) -> AmountRange:
        return AmountRange(minimum=self.minimum(pair))  # a transfer has no maximum of its own

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote:
        self._require_same_asset(pair)
        return Quote(to_amount=from_amount, rate_id=None)

    def create(self, request: ExchangeRequest) -> CreatedExchange:
        self._require_same_asset(request.pair)
        if request.payout_extra_id:
            # A plain transfer carries no memo: the destination would never see whose it is.
            raise ExchangeRefused(
                f"a direct transfer cannot carry the memo {request.payout_extra_id!r}", kind=RefusalKind.INVALID_ADDRESS
            )
        return CreatedExchange(
            # One id per batch, so a repeated call returns the same "exchange".
            id=f"{ID_PREFIX}{request.reference}",
            from_amount=request.from_amount,
            to_amount=request.from_amount,
            payin_address=request.payout_address,
            payout_address=request.payout_address,
            pair=request.pair,
        )

    def status(self, exchange: ExchangeRef) -> ExchangeState:
        # Paid only once the transfer is confirmed: a signed or broadcast one may still fail.
        if not (exchange.deposit_confirmed and exchange.deposit_tx_hash):
            return ExchangeState(exchange.id, ExchangeStatus.AWAITING_DEPOSIT, "awaiting_transfer")
        return ExchangeState(
            exchange.id,
            ExchangeStatus.FINISHED,
            "transferred",
            amount_from=exchange.from_amount,
            amount_to=exchange.from_amount,
            payin_hash=exchange.deposit_tx_hash,
            payout_hash=exchange.deposit_tx_hash,
        )

    def validate_address(self, receiving: Asset, address: str) -> AddressCheck:
        problem = address_problem(address, receiving.chain)
        return AddressCheck(valid=problem is None, message=problem or "")

    @staticmethod
    def _require_same_asset(pair: ExchangePair) -> None:
        if not pair.is_direct:
            raise ExchangeRefused(f"a direct transfer cannot exchange {pair}", kind=RefusalKind.PAIR_UNAVAILABLE)
