"""The EVM chain adapter for host payments: nonces from a locked per-sender row, EIP-1559 fees
under ETH_MAX_FEE_GWEI, the balance guard, and the same-nonce fee bump for a stuck transaction.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import F
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from eth_account import Account

from integrations.assets import SendMethod, asset
from integrations.evm_node import EvmNode, FeeAboveCap, NonceTakenByAnotherTransaction, SignedTransfer
from pgp_project.money import from_base_units
from pgp_project.operations.selectors import get_runtime_settings

from ..locking import lock_evm_sender
from ..models import IN_FLIGHT, EvmTransfer, HostPayment
from .ports import (
    FeesAboveCap,
    InsufficientHotWalletBalance,
    MinedTransaction,
    SendingSlotTaken,
    SignedCandidate,
    SigningKeyMissing,
)

logger = logging.getLogger(__name__)

# Nodes accept a replacement only if both fees rise by at least 12.5 %.
REPLACEMENT_BUMP_NUMERATOR, REPLACEMENT_BUMP_DENOMINATOR = 9, 8


@dataclass(frozen=True)
class HotWalletKey:
    address: str
    private_key: str

    def __repr__(self) -> str:  # never print the key
        return f"HotWalletKey({self.address})"


@sensitive_variables("key")
def hot_wallet_key() -> HotWalletKey:
    """The current key: every new host payment sends from its address."""
    key = settings.HOT_WALLET_PRIVATE_KEY
    if not key:
        raise RuntimeError("HOT_WALLET_PRIVATE_KEY is not configured")
    return HotWalletKey(address=Account.from_key(key).address, private_key=key)


@sensitive_variables("previous")
def keyring() -> list[HotWalletKey]:
    """The current key, then the previous ones kept for the payments still in flight from them."""
    previous = [key for key in settings.HOT_WALLET_PREVIOUS_PRIVATE_KEYS if key]
    return [hot_wallet_key(), *(HotWalletKey(Account.from_key(key).address, key) for key in previous)]


class EvmChain:
    chain = "eth"

    def __init__(self, node: EvmNode | None = None) -> None:
        self.node = node or EvmNode()

    @property
    def max_fee_cap_wei(self) -> int:
        return int(settings.ETH_MAX_FEE_GWEI) * 10**9

    def hot_wallet_address(self) -> str:
        return hot_wallet_key().address

    def wallet_addresses(self) -> list[str]:
        return [key.address for key in keyring()]

    # --- signing ---------------------------------------------------------------------------

    @method_decorator(sensitive_variables("key"))
    def sign_first(self, host_payment: HostPayment) -> SignedCandidate:
        key = _key_owning(host_payment)
        # Node reads that need no lock come first, so the sender's lock is held only for the
        # balance check against our other payments' reservations and for signing.
        chain_nonce = self.node.pending_nonce(host_payment.from_address)
        fees = self._fees_under_cap()
        # The amount first, without gas: estimating gas for a token transfer the wallet cannot
        # cover would revert instead of telling us to wait.
        self._require_balance(host_payment, max_gas_cost_wei=0)
        gas = self._estimate_gas(host_payment)
        sender = lock_evm_sender(host_payment.from_address)
        # Under the lock, the balances must also cover our payments signed meanwhile.
        self._require_balance(host_payment, max_gas_cost_wei=fees[0] * gas)
        # The chain's count covers sends made outside this system; ours covers signed but not
        # yet broadcast transactions. The larger is the first free nonce.
        nonce = max(sender.next_nonce, chain_nonce)
        signed = self._sign(host_payment, key, nonce, fees, gas)
        EvmTransfer.objects.create(
            host_payment=host_payment,
            sender=host_payment.from_address,
            nonce=signed.nonce,
            gas_limit=signed.gas_limit,
            max_fee_per_gas=signed.max_fee_per_gas,
            max_priority_fee_per_gas=signed.max_priority_fee_per_gas,
        )
        sender.next_nonce = signed.nonce + 1
        sender.save(update_fields=["next_nonce", "updated_at"])
        return _candidate(signed)

    @method_decorator(sensitive_variables("key"))
    def sign_replacement(self, host_payment: HostPayment) -> SignedCandidate | None:
        transfer = EvmTransfer.objects.get(host_payment=host_payment)
        # The same key as the original, or the "replacement" would be a second transfer from
        # another account, at a nonce of its own.
        key = _key_owning(host_payment)
        network_max, network_tip = self.node.fees(self.max_fee_cap_wei)
        bumped_max = max(network_max, _bumped(int(transfer.max_fee_per_gas)))
        bumped_tip = max(network_tip, _bumped(int(transfer.max_priority_fee_per_gas)))
        if bumped_max > self.max_fee_cap_wei:
            return None
        fees = (bumped_max, min(bumped_tip, bumped_max))
        signed = self._sign(host_payment, key, int(transfer.nonce), fees, int(transfer.gas_limit))
        EvmTransfer.objects.filter(pk=transfer.pk).update(
            max_fee_per_gas=signed.max_fee_per_gas, max_priority_fee_per_gas=signed.max_priority_fee_per_gas
        )
        return _candidate(signed)

    def _fees_under_cap(self) -> tuple[int, int]:
        try:
            return self.node.fees(self.max_fee_cap_wei)
        except FeeAboveCap as exc:
            raise FeesAboveCap(str(exc)) from exc

    def _estimate_gas(self, host_payment: HostPayment) -> int:
        sent = asset(host_payment.chain, host_payment.asset)
        units = int(host_payment.amount_base_units)
        if sent.send_method == SendMethod.TOKEN:
            return self.node.estimate_gas(
                sender=host_payment.from_address,
                to=host_payment.to_address,
                token=sent.contract_address(),
                amount_units=units,
            )
        return self.node.estimate_gas(sender=host_payment.from_address, to=host_payment.to_address, amount_wei=units)

    @method_decorator(sensitive_variables("key"))
    def _sign(
        self, host_payment: HostPayment, key: HotWalletKey, nonce: int, fees: tuple[int, int], gas: int
    ) -> SignedTransfer:
        sent = asset(host_payment.chain, host_payment.asset)
        units, to = int(host_payment.amount_base_units), host_payment.to_address
        if sent.send_method == SendMethod.NATIVE:
            return self.node.sign_eth_transfer(
                private_key=key.private_key, to=to, amount_wei=units, nonce=nonce, fees=fees, gas=gas
            )
        if sent.send_method == SendMethod.TOKEN:
            return self.node.sign_token_transfer(
                private_key=key.private_key,
                token=sent.contract_address(),
                to=to,
                amount_units=units,
                nonce=nonce,
                fees=fees,
                gas=gas,
            )
        raise ValueError(f"the hot wallet does not send {sent}")

    def _require_balance(self, host_payment: HostPayment, *, max_gas_cost_wei: int) -> None:
        """The wallet must hold the amount plus the maximum gas (native), or the tokens plus the
        gas (token), net of what our signed but unmined payments will take."""
        unmined = (
            HostPayment.objects.filter(
                from_address=host_payment.from_address,
                chain=self.chain,
                status__in=IN_FLIGHT,
                block_number__isnull=True,
            )
            .exclude(pk=host_payment.pk)
            .annotate(gas_wei=F("evm__max_fee_per_gas") * F("evm__gas_limit"))
            .values_list("asset", "amount_base_units", "gas_wei")
        )
        needed: dict[str, int] = {}
        for code, units, gas_wei in unmined:
            needed[code] = needed.get(code, 0) + int(units)
            needed["eth"] = needed.get("eth", 0) + int(gas_wei or 0)
        needed[host_payment.asset] = needed.get(host_payment.asset, 0) + int(host_payment.amount_base_units)
        needed["eth"] = needed.get("eth", 0) + max_gas_cost_wei
        held = {code: self._balance(code, host_payment.from_address) for code, units in needed.items() if units}
        short = {code: (held[code], units) for code, units in needed.items() if units and held[code] < units}
        if short:
            detail = ", ".join(f"{code}: holds {have}, needs {need}" for code, (have, need) in sorted(short.items()))
            raise InsufficientHotWalletBalance(
                f"hot wallet {host_payment.from_address} cannot cover host payment #{host_payment.pk} in base units "
                f"({detail}; amount, maximum gas, and unmined payments)"
            )

    def _balance(self, code: str, address: str) -> int:
        held = asset(self.chain, code)
        if held.send_method == SendMethod.NATIVE:
            return self.node.eth_balance(address)
        return self.node.token_balance(held.contract_address(), address)

    # --- sending and following -------------------------------------------------------------

    def broadcast(self, raw_transaction: str, tx_hash: str) -> None:
        try:
            self.node.broadcast(raw_transaction, tx_hash)
        except NonceTakenByAnotherTransaction as exc:
            raise SendingSlotTaken(str(exc)) from exc

    def find_mined(self, tx_hashes: list[str]) -> MinedTransaction | None:
        for tx_hash in tx_hashes:
            receipt = self.node.receipt(tx_hash)
            if receipt is not None:
                return MinedTransaction(
                    tx_hash=tx_hash,
                    succeeded=receipt.status == 1,
                    block_number=receipt.block_number,
                    network_fee=receipt.gas_used * receipt.effective_gas_price,
                )
        return None

    def confirmations(self, block_number: int) -> int:
        return max(0, self.node.block_number() - block_number + 1)

    def nothing_was_sent(self, host_payment: HostPayment) -> str | None:
        """Proof read from the chain itself: the transaction at the payment's nonce, in a block
        with the required confirmations, is another one (ours can never be mined), or is ours and
        reverted (only gas was spent). None when the chain does not prove it."""
        transfer = EvmTransfer.objects.filter(host_payment=host_payment).first()
        if transfer is None:
            return None
        ours = {h.lower() for h in host_payment.candidates.values_list("tx_hash", flat=True)}
        required = get_runtime_settings().confirmations_required
        used = self.node.transaction_at_nonce(transfer.sender, int(transfer.nonce), confirmations=required)
        if used is None:
            return None
        tx_hash, block = used
        if tx_hash.lower() not in ours:
            return (
                f"nonce {transfer.nonce} of {transfer.sender} was used by {tx_hash} in block {block}, which is not "
                f"ours: none of our {len(ours)} candidate(s) can ever be mined"
            )
        receipt = self.node.receipt(tx_hash)
        if receipt is not None and receipt.status != 1:
            return f"{tx_hash} reverted in block {block}: only gas was spent"
        return None

    def received(self, tx_hash: str, to_address: str, asset_code: str) -> Decimal | None:
        sent = asset(self.chain, asset_code)
        if sent.send_method == SendMethod.NATIVE:
            units = self.node.value_delivered(tx_hash, to_address)
        else:
            units = self.node.token_delivered(tx_hash, sent.contract_address(), to_address)
        return None if units is None else from_base_units(units, sent.decimals)


@sensitive_variables("key")
def _key_owning(host_payment: HostPayment) -> HotWalletKey:
    """The key whose address the payment sends from (reliability rule 10), from the keyring."""
    for key in keyring():
        if key.address.lower() == host_payment.from_address.lower():
            return key
    raise SigningKeyMissing(
        f"no configured key owns {host_payment.from_address}, which host payment #{host_payment.pk} sends from: "
        "add its key to HOT_WALLET_PREVIOUS_PRIVATE_KEYS"
    )


def _bumped(value: int) -> int:
    return value * REPLACEMENT_BUMP_NUMERATOR // REPLACEMENT_BUMP_DENOMINATOR + 1


def _candidate(signed: SignedTransfer) -> SignedCandidate:
    return SignedCandidate(
        tx_hash=signed.tx_hash,
        raw_transaction=signed.raw_transaction,
        fee_details={
            "nonce": signed.nonce,
            "max_fee_per_gas": signed.max_fee_per_gas,
            "max_priority_fee_per_gas": signed.max_priority_fee_per_gas,
            "gas_limit": signed.gas_limit,
        },
    )
