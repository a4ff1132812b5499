"""Wallet address rules for client payout destinations."""

from django.core.exceptions import ValidationError
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

# ChangeNOW network codes of EVM chains: their addresses are 0x-hex and EIP-55 checksummed.
EVM_NETWORKS = frozenset({"eth", "bsc", "matic", "arbitrum", "op", "base", "avaxc"})


def validate_wallet_address(address: str, network: str) -> None:
    """Raise ValidationError unless `address` is acceptable for `network`.

    EVM addresses must carry a valid EIP-55 checksum, so a mistyped character is caught here
    rather than paid out to a stranger. Other networks are validated by ChangeNOW's
    /v2/validate/address before any payout (the payout flow does that).
    """
    if not address or address != address.strip():
        raise ValidationError("Wallet address is empty or has surrounding spaces.")
    if network.lower() in EVM_NETWORKS:
        if not is_hex_address(address):
            raise ValidationError(f"{address!r} is not a 0x-prefixed 40-hex-digit EVM address.")
        if not is_checksum_address(address):
            raise ValidationError(
                f"{address!r} fails the EIP-55 checksum; if the address is right, its "
                f"checksummed form is {to_checksum_address(address)}."
            )
