"""The chain port: what the host-payment state machine needs from a chain. The machine itself
(created -> signed -> broadcast -> confirmed | failed) is the same on every chain; an adapter
knows how its chain orders transactions (EVM: nonces), prices them (EVM: EIP-1559 fees) and
replaces a stuck one. Adapters are chosen by chain from settings.PGP_CHAIN_ADAPTERS.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from pgp_project.operations.adapters import load_adapter

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
    """The slot our transaction was signed for (EVM: its nonce) was used by a transaction that
    is not ours: the payment cannot go out as signed and needs an operator."""


class ChainAdapter(Protocol):
    chain: str

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
    adapter: ChainAdapter = load_adapter("PGP_CHAIN_ADAPTERS", chain)
    return adapter
