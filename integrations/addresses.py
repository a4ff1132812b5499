"""Address checks we can make ourselves, by the chain's address format (see assets.CHAINS).
Addresses of other chains are checked by the exchange before any payout."""

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
