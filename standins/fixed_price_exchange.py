"""A second exchange provider, for the demo and the tests only: a fixed price list, deposits
seen and payouts made on the local chain. It exists to show that another exchange is one adapter
module plus one entry in settings.PGP_EXCHANGES (see settings/test.py): nothing in the
flows changes.

It trades the local chain's two assets (ETH and USDT ERC-20) both ways. Each exchange gets a
fresh payin address; once that address holds the deposit, the exchange pays the payout address
from its own account (anvil's dev account 8, which holds ETH from genesis; fund it with USDT to
pay USDT out).
"""

import secrets
from decimal import ROUND_DOWN, Decimal
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from eth_account import Account
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams

from evm_chain.adapter import EvmChain
from integrations.addresses import address_problem
from integrations.assets import Asset, SendMethod, asset
from integrations.exchange.port import (
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
from payouts.host_payments.ports import chain_adapter
from pgp_project.money import from_base_units, to_base_units
from pgp_project.operations.environment_secrets import secret_from_environment

from .erc20 import ERC20_ABI
from .localchain import ANVIL_DEV_PRIVATE_KEYS, TOKEN_CALL_GAS, connect, eip1559_fees
from .models import FixedPriceExchangeRecord

USD_PRICES = {("eth", "eth"): Decimal("2000"), ("eth", "usdt"): Decimal("1")}  # (chain, asset) -> USD
MINIMUM_FROM_AMOUNT = Decimal("0.0001")
ACCOUNT_INDEX = 8
NATIVE_TRANSFER_GAS = 21_000
STATUSES = {
    "waiting": ExchangeStatus.AWAITING_DEPOSIT,
    "sending": ExchangeStatus.SENDING,
    "finished": ExchangeStatus.FINISHED,
    "failed": ExchangeStatus.FAILED,
}


class FixedPriceExchange:
    def __init__(self, name: str = "fixed_price", config: Any = None) -> None:
        self.name = name
        chain = settings.PGP_CHAINS["eth"]  # it pays out on the local chain the demo's hot wallet is on
        self.w3 = connect(secret_from_environment(chain["rpc_url_env"], chain["rpc_url_default"]))
        self.account = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[ACCOUNT_INDEX])

    def supports(self, pair: ExchangePair) -> bool:
        return not pair.is_direct and pair.source.key in USD_PRICES and pair.target.key in USD_PRICES

    def minimum(self, pair: ExchangePair) -> Decimal:
        self._rate(pair)
        return MINIMUM_FROM_AMOUNT

    def amount_range(self, pair: ExchangePair) -> AmountRange:
        return AmountRange(minimum=self.minimum(pair))  # its own account is the only limit

    def estimate(self, pair: ExchangePair, from_amount: Decimal) -> Quote:
        return Quote(to_amount=self._to_amount(pair, from_amount), rate_id=None)

    def create(self, request: ExchangeRequest) -> CreatedExchange:
        if request.from_amount < MINIMUM_FROM_AMOUNT:
            raise ExchangeRefused(f"below the minimum {MINIMUM_FROM_AMOUNT}", kind=RefusalKind.OUT_OF_RANGE)
        record = FixedPriceExchangeRecord.objects.create(
            id=f"fp-{secrets.token_hex(8)}",
            from_currency=request.pair.source.symbol,
            from_network=request.pair.source.chain,
            to_currency=request.pair.target.symbol,
            to_network=request.pair.target.chain,
            from_amount=request.from_amount,
            to_amount=self._to_amount(request.pair, request.from_amount),
            payin_address=Account.create().address,  # a fresh address per exchange, key thrown away
            payout_address=request.payout_address,
        )
        return CreatedExchange(
            id=record.id,
            from_amount=record.from_amount,
            to_amount=record.to_amount,
            payin_address=record.payin_address,
            payout_address=record.payout_address,
            pair=request.pair,
        )

    def status(self, exchange: ExchangeRef) -> ExchangeState:
        with transaction.atomic():  # one payout per exchange, however many pollers ask at once
            record = FixedPriceExchangeRecord.objects.select_for_update().get(pk=exchange.id)
            if record.status == "waiting" and self._held(
                record.from_network, record.from_currency, record.payin_address
            ) >= (record.from_amount):
                record.payout_tx_hash = self._pay(record)
                record.status = "sending"
            if record.status == "sending":
                record.status = self._settled(record.payout_tx_hash) or "sending"
            record.save(update_fields=["status", "payout_tx_hash"])
        finished = record.status == "finished"
        return ExchangeState(
            id=record.id,
            status=STATUSES[record.status],
            provider_status=record.status,
            amount_from=record.from_amount,
            amount_to=record.to_amount if finished else None,
            payout_hash=record.payout_tx_hash,
        )

    def validate_address(self, receiving: Asset, address: str) -> AddressCheck:
        problem = address_problem(address, receiving.chain)
        return AddressCheck(valid=problem is None, message=problem or "")

    # --- the price list and the chain ------------------------------------------------------

    def _rate(self, pair: ExchangePair) -> Decimal:
        try:
            return USD_PRICES[pair.source.key] / USD_PRICES[pair.target.key]
        except KeyError:
            raise ExchangeRefused(f"{pair} is not on the price list", kind=RefusalKind.PAIR_UNAVAILABLE) from None

    def _to_amount(self, pair: ExchangePair, from_amount: Decimal) -> Decimal:
        return (from_amount * self._rate(pair)).quantize(pair.target.quantum, rounding=ROUND_DOWN)

    def _held(self, chain: str, symbol: str, address: str) -> Decimal:
        held = asset(chain, symbol)
        if held.send_method == SendMethod.NATIVE:
            return from_base_units(self.w3.eth.get_balance(Web3.to_checksum_address(address)), held.decimals)
        token = self.w3.eth.contract(
            address=Web3.to_checksum_address(_token_contract(held.chain, held.symbol)), abi=ERC20_ABI
        )
        return from_base_units(token.functions.balanceOf(Web3.to_checksum_address(address)).call(), held.decimals)

    def _pay(self, record: FixedPriceExchangeRecord) -> str:
        paid = asset(record.to_network, record.to_currency)
        to_address = Web3.to_checksum_address(record.payout_address)
        units = to_base_units(record.to_amount, paid.decimals)
        common: dict[str, Any] = {
            "chainId": self.w3.eth.chain_id,
            "from": self.account.address,
            "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending"),
            **eip1559_fees(self.w3),
        }
        tx: Any
        if paid.send_method == SendMethod.NATIVE:
            tx = {**common, "to": to_address, "value": units, "gas": NATIVE_TRANSFER_GAS}
        else:
            token = self.w3.eth.contract(
                address=Web3.to_checksum_address(_token_contract(paid.chain, paid.symbol)), abi=ERC20_ABI
            )
            tx = token.functions.transfer(to_address, units).build_transaction(
                cast(TxParams, {**common, "gas": TOKEN_CALL_GAS})
            )
        signed = self.account.sign_transaction(tx)
        self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return signed.hash.to_0x_hex()

    def _settled(self, tx_hash: str) -> str | None:
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        return "finished" if receipt["status"] == 1 else "failed"


def _token_contract(chain: str, symbol: str) -> str:
    """The contract our configured chain's adapter sends this token through."""
    adapter = chain_adapter(chain)
    assert isinstance(adapter, EvmChain), f"the fixed-price stand-in pays on EVM chains only, not {chain}"
    return adapter.token_contract(symbol)
