"""The EVM chain adapter, one instance per configured EVM chain (PGP_CHAINS): nonces from a
locked per-(chain, sender) row, EIP-1559 fees under the chain's `max_fee_gwei`, the balance guard,
the same-nonce fee bump for a stuck transaction, the "nothing was sent" proof from the nonce, the
wallet's balances and gas price for the overview, and the reconciliation scan.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from eth_account import Account

from integrations.addresses import address_problem
from integrations.assets import Asset, SendMethod, asset
from payouts.host_payments.ports import (
    ChainScan,
    FeesAboveCap,
    InsufficientHotWalletBalance,
    MinedTransaction,
    SendingSlotTaken,
    SignedCandidate,
    SigningKeyMissing,
    WalletReading,
)
from payouts.models import IN_FLIGHT, HostPayment
from pgp_project.money import from_base_units
from pgp_project.money_display import format_amount
from pgp_project.operations.environment_secrets import secret_from_environment, secrets_from_environment

from .models import EvmSender, EvmTransfer
from .node import EvmNode, FeeAboveCap, NonceTakenByAnotherTransaction, SignedTransfer
from .scan import scan_sends

WEI_PER_GWEI = 10**9

logger = logging.getLogger(__name__)

# Nodes accept a replacement only if both fees rise by at least 12.5 %.
REPLACEMENT_BUMP_NUMERATOR, REPLACEMENT_BUMP_DENOMINATOR = 9, 8


@dataclass(frozen=True)
class HotWalletKey:
    address: str
    private_key: str

    def __repr__(self) -> str:  # never print the key
        return f"HotWalletKey({self.address})"


class EvmChain:
    """One EVM chain as PGP_CHAINS configures it."""

    def __init__(self, chain: str, config: Mapping[str, Any]) -> None:
        self.chain = chain
        self.config = config
        self.chain_id = int(config["chain_id"])
        self.native_asset = str(config.get("native_asset", "eth"))
        self.confirmations_required = max(1, int(config.get("confirmations", 3)))
        self.max_fee_cap_wei = int(config.get("max_fee_gwei", 200)) * WEI_PER_GWEI
        keyring = config.get("keyring", {})
        self.current_key_variable = str(keyring.get("current_env", ""))
        self.previous_keys_variable = str(keyring.get("previous_env", ""))
        self.node_timeout = float(config.get("timeout_seconds", 10.0))
        self._nodes: dict[str, EvmNode] = {}

    @property
    def node(self) -> EvmNode:
        """A client of this chain's node. The URL is read at each use (it may hold an API key and
        be rotated); one client per URL is kept."""
        variable = str(self.config.get("rpc_url_env", ""))
        url = secret_from_environment(variable, str(self.config.get("rpc_url_default", ""))) if variable else ""
        url = url or str(self.config.get("rpc_url_default", ""))
        if not url:
            raise RuntimeError(f"chain {self.chain!r} has no node URL (set {variable})")
        if url not in self._nodes:
            self._nodes[url] = EvmNode(url, chain_id=self.chain_id, timeout=self.node_timeout)
        return self._nodes[url]

    def token_contract(self, symbol: str) -> str:
        token = self.config.get("tokens", {}).get(symbol)
        if not token:
            raise LookupError(f"{symbol.upper()} on {self.chain} has no contract configured")
        address = str(token.get("contract") or secret_from_environment(str(token.get("contract_env", ""))))
        if not address:
            raise LookupError(f"{symbol.upper()} on {self.chain} has no contract address configured")
        return address

    # --- keys ------------------------------------------------------------------------------

    @sensitive_variables("key")
    def hot_wallet_key(self) -> HotWalletKey:
        """The current key: every new host payment sends from its address."""
        key = secret_from_environment(self.current_key_variable)
        if not key:
            raise RuntimeError(f"{self.current_key_variable} is not configured (the hot wallet key of {self.chain})")
        return HotWalletKey(address=Account.from_key(key).address, private_key=key)

    @sensitive_variables("previous")
    def keyring(self) -> list[HotWalletKey]:
        """The current key, then the previous ones kept for the payments still in flight from them."""
        previous = secrets_from_environment(self.previous_keys_variable) if self.previous_keys_variable else []
        return [self.hot_wallet_key(), *(HotWalletKey(Account.from_key(key).address, key) for key in previous)]

    def hot_wallet_address(self) -> str:
        return self.hot_wallet_key().address

    def wallet_addresses(self) -> list[str]:
        return [key.address for key in self.keyring()]

    def sends(self, symbol: str) -> bool:
        return symbol == self.native_asset or symbol in self.config.get("tokens", {})

    def validate_address(self, address: str) -> str | None:
        return address_problem(address, self.chain)

    # --- signing ---------------------------------------------------------------------------

    @method_decorator(sensitive_variables("key"))
    def sign_first(self, host_payment: HostPayment) -> SignedCandidate:
        key = self._key_owning(host_payment)
        # Node reads that need no lock come first, so the sender's lock is held only for the
        # balance check against our other payments' reservations and for signing.
        node = self.node
        chain_nonce = node.pending_nonce(host_payment.from_address)
        fees = self._fees_under_cap(node)
        # The amount first, without gas: estimating gas for a token transfer the wallet cannot
        # cover would revert instead of telling us to wait.
        self._require_balance(host_payment, max_gas_cost_wei=0)
        gas = self._estimate_gas(host_payment)
        sender = self._lock_sender(host_payment.from_address)
        # Under the lock, the balances must also cover our payments signed meanwhile.
        self._require_balance(host_payment, max_gas_cost_wei=fees[0] * gas)
        # The chain's count covers sends made outside this system; ours covers signed but not
        # yet broadcast transactions. The larger is the first free nonce.
        nonce = max(sender.next_nonce, chain_nonce)
        signed = self._sign(host_payment, key, nonce, fees, gas)
        EvmTransfer.objects.create(
            host_payment=host_payment,
            chain=self.chain,
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
        key = self._key_owning(host_payment)
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

    def _lock_sender(self, address: str) -> EvmSender:
        """The sending address's nonce row on this chain: always the last lock taken (after the
        batch and its host payment, payouts/locking.py)."""
        EvmSender.objects.get_or_create(chain=self.chain, address=address)
        return EvmSender.objects.select_for_update().get(chain=self.chain, address=address)

    def _fees_under_cap(self, node: EvmNode) -> tuple[int, int]:
        try:
            return node.fees(self.max_fee_cap_wei)
        except FeeAboveCap as exc:
            raise FeesAboveCap(str(exc)) from exc

    def _estimate_gas(self, host_payment: HostPayment) -> int:
        sent = asset(host_payment.chain, host_payment.asset)
        units = int(host_payment.amount_base_units)
        if sent.send_method == SendMethod.TOKEN:
            return self.node.estimate_gas(
                sender=host_payment.from_address,
                to=host_payment.to_address,
                token=self.token_contract(sent.symbol),
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
                token=self.token_contract(sent.symbol),
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
            needed[self.native_asset] = needed.get(self.native_asset, 0) + int(gas_wei or 0)
        needed[host_payment.asset] = needed.get(host_payment.asset, 0) + int(host_payment.amount_base_units)
        needed[self.native_asset] = needed.get(self.native_asset, 0) + max_gas_cost_wei
        held = {code: self._balance(code, host_payment.from_address) for code, units in needed.items() if units}
        short = {code: (held[code], units) for code, units in needed.items() if units and held[code] < units}
        if short:
            detail = ", ".join(f"{code}: holds {have}, needs {need}" for code, (have, need) in sorted(short.items()))
            raise InsufficientHotWalletBalance(
                f"hot wallet {host_payment.from_address} cannot cover host payment #{host_payment.pk} in base units "
                f"({detail}; amount, maximum gas, and unmined payments)"
            )

    def _balance(self, code: str, address: str) -> int:
        if code == self.native_asset:
            return self.node.eth_balance(address)
        return self.node.token_balance(self.token_contract(code), address)

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
        used = self.node.transaction_at_nonce(
            transfer.sender, int(transfer.nonce), confirmations=self.confirmations_required
        )
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
            units = self.node.token_delivered(tx_hash, self.token_contract(sent.symbol), to_address)
        return None if units is None else from_base_units(units, sent.decimals)

    # --- what the console shows -------------------------------------------------------------

    def sent_assets(self) -> list[Asset]:
        """The native asset, then every token configured for this chain."""
        symbols = [self.native_asset, *self.config.get("tokens", {})]
        return [asset(self.chain, symbol) for symbol in symbols]

    def read_wallet(self) -> WalletReading:
        node, address = self.node, self.hot_wallet_address()
        balances = {}
        for held in self.sent_assets():
            units = (
                node.eth_balance(address)
                if held.symbol == self.native_asset
                else node.token_balance(self.token_contract(held.symbol), address)
            )
            balances[held.symbol] = from_base_units(units, held.decimals)
        return WalletReading(address=address, balances=balances, fee_rate=Decimal(node.gas_price()))

    def format_fee_rate(self, rate: Decimal | None) -> str:
        return "-" if rate is None else f"{_gwei(rate)} gwei"

    def format_network_fee(self, base_units: int | Decimal | None) -> str:
        if base_units is None:
            return "-"
        native = asset(self.chain, self.native_asset)
        amount = format_amount(from_base_units(int(base_units), native.decimals), native.symbol)
        return f"{amount} ({_gwei(base_units)} gwei)"

    def signing_details(self, host_payment: HostPayment) -> list[tuple[str, str]]:
        transfer = EvmTransfer.objects.filter(host_payment=host_payment).first()
        if transfer is None:
            return []
        return [
            ("sender", transfer.sender),
            ("nonce", str(transfer.nonce)),
            ("gas limit", str(transfer.gas_limit)),
            ("max fee per gas", f"{_gwei(transfer.max_fee_per_gas)} gwei"),
            ("max priority fee per gas", f"{_gwei(transfer.max_priority_fee_per_gas)} gwei"),
        ]

    def describe_candidate_fees(self, fee_details: Mapping[str, Any]) -> str:
        return ", ".join(
            f"{name.replace('_', ' ')} {f'{_gwei(value)} gwei' if name.endswith('per_gas') else value}"
            for name, value in fee_details.items()
        )

    def scan_sends(self, start: datetime, end: datetime, max_blocks: int) -> ChainScan:
        tokens = {}
        for held in self.sent_assets():
            if held.symbol != self.native_asset:
                try:
                    tokens[held.symbol] = self.token_contract(held.symbol)
                except LookupError:
                    continue
        return scan_sends(
            self.node,
            senders={address.lower() for address in self.wallet_addresses()},
            native=asset(self.chain, self.native_asset),
            tokens={symbol: (contract, asset(self.chain, symbol)) for symbol, contract in tokens.items()},
            start=start,
            end=end,
            max_blocks=max_blocks,
        )

    @sensitive_variables("key")
    def _key_owning(self, host_payment: HostPayment) -> HotWalletKey:
        """The key whose address the payment sends from (reliability rule 10), from the keyring."""
        for key in self.keyring():
            if key.address.lower() == host_payment.from_address.lower():
                return key
        raise SigningKeyMissing(
            f"no configured key owns {host_payment.from_address}, which host payment #{host_payment.pk} sends from: "
            f"add its key to {self.previous_keys_variable or 'the keyring'} ({self.chain})"
        )


def _gwei(wei: int | Decimal) -> str:
    text = f"{Decimal(int(wei)) / WEI_PER_GWEI:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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
