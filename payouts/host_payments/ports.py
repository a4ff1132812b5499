"""The chain port: everything the rest of the system needs from a chain. The host-payment
machine (created -> signed -> broadcast -> confirmed | failed) is the same on every chain; an
adapter knows how its chain orders transactions, prices them and replaces a stuck one, how its
addresses look, what the hot wallet holds there, how its fees are shown, and how to list what the
hot wallet sent (reconciliation). Nothing outside an adapter knows any of that.

Chains are configured, not coded: settings.PGP_CHAINS maps a chain name to its adapter class and
that chain's configuration (node, chain id, native asset, confirmations, fee cap, the names of the
environment variables that hold its keys, token contracts). Two chains of one family are two
entries of one adapter class. Each adapter instance is built once per process.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..models import HostPayment


@dataclass(frozen=True)
class SignedCandidate:
    tx_hash: str
    raw_transaction: str
    fee_details: dict[str, int] = field(default_factory=dict)  # shown to operators


@dataclass(frozen=True)
class MinedTransaction:
    tx_hash: str
    succeeded: bool
    block_number: int
    network_fee: int  # what inclusion cost, in the chain's native base units


class InsufficientHotWalletBalance(Exception):
    """The hot wallet cannot cover this payment yet: it waits (it does not fail)."""


class FeesAboveCap(Exception):
    """Network fees are above our configured cap: the payment waits rather than overpay."""


class SigningKeyMissing(Exception):
    """No configured key owns the address the payment sends from (a key was rotated away): it
    waits for the key rather than be signed from another account."""


class SendingSlotTaken(Exception):
    """The slot our transaction was signed for (an account's sequence number, where the chain has
    one) was used by a transaction that is not ours: the payment cannot go out as signed and needs
    an operator."""


@dataclass(frozen=True)
class WalletReading:
    """What the hot wallet holds on one chain, read from its node: balances by asset symbol (in
    that asset's units, exact) and the network's current fee rate in the adapter's own unit."""

    address: str
    balances: dict[str, Decimal]
    fee_rate: Decimal | None


@dataclass
class ChainSend:
    """One transaction out of one of the hot wallet's addresses as the chain shows it, or a token
    transfer out of one started by someone else (`sent_by_us` False). `transfers` lists what it
    moved as (asset symbol, recipient, base units); a reverted one moved nothing."""

    tx_hash: str
    block: int
    sender: str
    succeeded: bool = True
    network_fee: int = 0  # in the native asset's base units
    transfers: list[tuple[str, str, int]] = field(default_factory=list)
    sent_by_us: bool = True
    description: str = ""


@dataclass
class ChainScan:
    """The hot wallet's sends in a time range: the blocks scanned and what they hold. `unscanned`
    says what a bounded scan left out (reported, never silently cut)."""

    addresses: list[str]
    first_block: int | None
    last_block: int | None
    sends: list[ChainSend]
    unscanned: str = ""


class ChainAdapter(Protocol):
    chain: str
    native_asset: str  # the asset symbol network fees are paid in
    confirmations_required: int

    def sends(self, symbol: str) -> bool:
        """Whether the hot wallet sends this asset on this chain (its native asset, or a token it
        has a contract for)."""
        ...

    def validate_address(self, address: str) -> str | None:
        """Why `address` cannot receive on this chain, or None when it can."""
        ...

    def read_wallet(self) -> WalletReading:
        """Balances of every asset the hot wallet sends here, and the fee rate. Raises
        TransientError when the node cannot be asked now."""
        ...

    def format_fee_rate(self, rate: Decimal | None) -> str: ...

    def format_network_fee(self, base_units: int | Decimal | None) -> str:
        """A mined transaction's fee, as operators read it."""
        ...

    def describe_candidate_fees(self, fee_details: Mapping[str, Any]) -> str:
        """The fees one signed candidate offered, as operators read them."""
        ...

    def signing_details(self, host_payment: HostPayment) -> list[tuple[str, str]]:
        """What the adapter recorded when it signed (its ordering slot and fees), as labelled
        values for the payment's page; empty before signing."""
        ...

    def scan_sends(self, start: datetime, end: datetime, max_blocks: int) -> ChainScan: ...

    def hot_wallet_address(self) -> str: ...

    def wallet_addresses(self) -> list[str]:
        """Every address of the hot wallet: the current key's, then those of rotated-away keys
        still kept for what is in flight from (or to) them."""
        ...

    def sign_first(self, host_payment: HostPayment) -> SignedCandidate:
        """Give the payment its sending slot and sign it. Called with the owning batch and the
        payment locked, inside their transaction; takes the sender's lock last and records what
        it needs in that same transaction. Raises InsufficientHotWalletBalance, or a
        TransientError when the chain cannot be asked now."""
        ...

    def sign_replacement(self, host_payment: HostPayment) -> SignedCandidate | None:
        """The same slot with higher fees, for a payment stuck unmined; None when our fee cap
        forbids it. Called with the payment locked."""
        ...

    def broadcast(self, raw_transaction: str, tx_hash: str) -> None:
        """Send signed bytes; sending the same bytes again is harmless. Raises SendingSlotTaken."""
        ...

    def find_mined(self, tx_hashes: list[str]) -> MinedTransaction | None: ...

    def confirmations(self, block_number: int) -> int: ...

    def nothing_was_sent(self, host_payment: HostPayment) -> str | None:
        """Proof from the chain that none of the payment's candidates moved its amount (one
        reverted; or its slot was used by another transaction), or None without such proof."""
        ...

    def received(self, tx_hash: str, to_address: str, asset: str) -> Decimal | None:
        """How much of `asset` transaction `tx_hash` delivered to `to_address`, once it is
        mined and succeeded; None otherwise."""
        ...


def chain_adapter(chain: str) -> ChainAdapter:
    """The adapter of a configured chain, built once per process from its PGP_CHAINS entry."""
    return _built_adapter(chain)


def configured_chains() -> list[str]:
    """Every chain the hot wallet holds funds on, in settings order."""
    return list(settings.PGP_CHAINS)


def chain_config(chain: str) -> Mapping[str, Any]:
    try:
        config: Mapping[str, Any] = settings.PGP_CHAINS[chain]
    except KeyError:
        raise LookupError(f"chain {chain!r} is not configured in PGP_CHAINS") from None
    return config


@functools.cache
def _built_adapter(chain: str) -> ChainAdapter:
    config = chain_config(chain)
    adapter: ChainAdapter = import_string(config["adapter"])(chain, config)
    return adapter


@receiver(setting_changed)
def _forget_adapters(*, setting: str, **_: Any) -> None:
    """Tests that reconfigure the chains get adapters built from the new configuration."""
    if setting == "PGP_CHAINS":
        _built_adapter.cache_clear()
