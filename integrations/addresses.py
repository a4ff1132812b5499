"""Address checks we can make ourselves, by the chain's address format (see assets.CHAINS).
Addresses of other chains are checked by the exchange before any payout."""

import re
from dataclasses import dataclass

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from .assets import AddressFormat, address_format


def address_problem(address: str, chain: str) -> str | None:
    """Why `address` cannot receive on `chain`, or None when nothing we can check is wrong.

    EVM addresses must carry a valid EIP-55 checksum, so a mistyped character is caught here
    rather than paid out to a stranger."""
    if not address or address != address.strip():
        return "Wallet address is empty or has surrounding spaces."
    if address_format(chain) == AddressFormat.EVM:
        if not is_hex_address(address):
            return f"{address!r} is not a 0x-prefixed 40-hex-digit EVM address."
        if not is_checksum_address(address):
            return (
                f"{address!r} fails the EIP-55 checksum; if the address is right, its "
                f"checksummed form is {to_checksum_address(address)}."
            )
    return None


@dataclass(frozen=True)
class MemoRule:
    """A network whose exchange and custodial deposit addresses are shared by many users and
    tell them apart by a second field (ChangeNOW's `extraId`). Paid to such an address without
    it, the money reaches the exchange but no account: it is lost until their support finds it."""

    label: str  # what wallets call it, shown next to the field
    pattern: str  # the whole value must match
    explanation: str


# ChangeNOW's currencies with `hasExternalId` (GET /v2/exchange/currencies) among the networks
# clients can choose; their formats as the networks define them.
MEMO_RULES: dict[str, MemoRule] = {
    "xrp": MemoRule("destination tag", r"(?:0|[1-9]\d{0,9})", "a whole number from 0 to 4294967295"),
    "xlm": MemoRule("memo", r"[\x21-\x7e]{1,28}", "up to 28 printable ASCII characters"),
    "ton": MemoRule("comment (memo)", r"[\x21-\x7e]{1,120}", "up to 120 printable ASCII characters"),
    "eos": MemoRule("memo", r"[\x21-\x7e]{1,256}", "up to 256 printable ASCII characters"),
    "atom": MemoRule("memo", r"[\x21-\x7e]{1,256}", "up to 256 printable ASCII characters"),
    "bnb": MemoRule("memo", r"[\x21-\x7e]{1,128}", "up to 128 printable ASCII characters (BEP2)"),
    "hbar": MemoRule("memo", r"[\x21-\x7e]{1,100}", "up to 100 printable ASCII characters"),
}
XRP_MAX_DESTINATION_TAG = 2**32 - 1


def extra_id_problem(extra_id: str, chain: str) -> str | None:
    """Why `extra_id` cannot go with a payout on `chain`, or None. Blank is always accepted: a
    personal wallet on a memo network needs none (the client's choice, shown on every page)."""
    if not extra_id:
        return None
    rule = MEMO_RULES.get(chain.lower())
    if rule is None:
        return f"Network {chain!r} takes no memo or destination tag; leave it empty."
    if re.fullmatch(rule.pattern, extra_id) is None or (
        chain.lower() == "xrp" and int(extra_id) > XRP_MAX_DESTINATION_TAG
    ):
        return f"{extra_id!r} is not a valid {rule.label} for {chain}: {rule.explanation}."
    return None
