"""Currencies the sandbox trades, the network each lives on, and address checks per network.

Only two assets exist on the local chain: native ETH and TestUSDT (USDT on network "eth"). Every
other asset is simulated: it can be paid out (with a made-up hash) but never deposited.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

from eth_utils import is_checksum_address


@dataclass(frozen=True)
class Asset:
    currency: str
    network: str
    decimals: int  # precision of amounts in this asset; on chain, the base-unit exponent
    legacy_ticker: str  # ChangeNOW's one-word ticker (v1 API), still reported by v2's by-id
    address_format: str  # key into ADDRESS_PATTERNS, or "evm"

    @property
    def key(self) -> tuple[str, str]:
        return (self.currency, self.network)

    @property
    def is_native_eth(self) -> bool:
        return self.key == ("eth", "eth")

    @property
    def is_erc20_usdt(self) -> bool:
        return self.key == ("usdt", "eth")

    @property
    def is_on_local_chain(self) -> bool:
        return self.is_native_eth or self.is_erc20_usdt

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)


_ASSET_LIST = (
    Asset("eth", "eth", 18, "eth", "evm"),
    Asset("usdt", "eth", 6, "usdterc20", "evm"),
    Asset("usdt", "trx", 6, "usdttrc20", "trx"),
    Asset("usdc", "eth", 6, "usdc", "evm"),
    Asset("btc", "btc", 8, "btc", "btc"),
    Asset("ltc", "ltc", 8, "ltc", "ltc"),
    Asset("trx", "trx", 6, "trx", "trx"),
    Asset("bnb", "bsc", 18, "bnbbsc", "evm"),
    Asset("sol", "sol", 9, "sol", "sol"),
    Asset("ton", "ton", 9, "ton", "ton"),
    Asset("doge", "doge", 8, "doge", "doge"),
    # A memo network: exchange deposit addresses need a destination tag (ChangeNOW's extraId).
    Asset("xrp", "xrp", 6, "xrp", "xrp"),
)
ASSETS: dict[tuple[str, str], Asset] = {asset.key: asset for asset in _ASSET_LIST}
_BY_LEGACY_TICKER: dict[str, Asset] = {asset.legacy_ticker: asset for asset in _ASSET_LIST}
# What ChangeNOW assumes when a request names a currency but no network.
DEFAULT_NETWORK: dict[str, str] = {
    "eth": "eth",
    "usdt": "eth",
    "usdc": "eth",
    "btc": "btc",
    "ltc": "ltc",
    "trx": "trx",
    "bnb": "bsc",
    "sol": "sol",
    "ton": "ton",
    "doge": "doge",
    "xrp": "xrp",
}

# USD prices the sandbox quotes with; ETH's is set at start-up (--eth-usd).
DEFAULT_USD_PRICES: dict[str, Decimal] = {
    "eth": Decimal("3000"),
    "usdt": Decimal("1"),
    "usdc": Decimal("1"),
    "btc": Decimal("60000"),
    "ltc": Decimal("80"),
    "trx": Decimal("0.12"),
    "bnb": Decimal("600"),
    "sol": Decimal("150"),
    "ton": Decimal("5"),
    "doge": Decimal("0.15"),
    "xrp": Decimal("0.5"),
}


def resolve_asset(currency: str | None, network: str | None = None) -> Asset | None:
    """The asset a request means, or None; accepts legacy tickers such as `usdterc20`."""
    currency = (currency or "").strip().lower()
    network = (network or "").strip().lower()
    if not currency:
        return None
    if not network and currency in _BY_LEGACY_TICKER and currency not in DEFAULT_NETWORK:
        return _BY_LEGACY_TICKER[currency]
    return ASSETS.get((currency, network or DEFAULT_NETWORK.get(currency, "")))


_BASE58 = "[1-9A-HJ-NP-Za-km-z]"
ADDRESS_PATTERNS: dict[str, re.Pattern[str]] = {
    "btc": re.compile(rf"^(?:[13]{_BASE58}{{25,34}}|bc1[02-9ac-hj-np-z]{{11,71}})$"),
    "ltc": re.compile(rf"^(?:[LM3]{_BASE58}{{26,33}}|ltc1[02-9ac-hj-np-z]{{11,71}})$"),
    "trx": re.compile(rf"^T{_BASE58}{{33}}$"),
    "sol": re.compile(rf"^{_BASE58}{{32,44}}$"),
    "ton": re.compile(r"^(?:[A-Za-z0-9_-]{48}|-?\d:[0-9a-fA-F]{64})$"),
    "doge": re.compile(rf"^[DA9]{_BASE58}{{25,34}}$"),
    "xrp": re.compile(r"^r[1-9A-HJ-NP-Za-km-z]{24,34}$"),
}
_EVM_HEX = re.compile(r"^0x[0-9a-fA-F]{40}$")


def address_problem(asset: Asset, address: str) -> str | None:
    """Why `address` cannot receive `asset`, or None when it plausibly can."""
    if "invalid" in address.lower():
        return "Invalid address"  # lets tests force a rejection with any made-up address
    if asset.address_format == "evm":
        if not _EVM_HEX.match(address):
            return "Invalid address: expected 0x followed by 40 hex digits"
        body = address[2:]
        # Mixed case claims an EIP-55 checksum, and a wrong one is a typo, as in every wallet.
        if body != body.lower() and body != body.upper() and not is_checksum_address(address):
            return "Invalid address: EIP-55 checksum does not match"
        return None
    if not ADDRESS_PATTERNS[asset.address_format].match(address):
        return f"Invalid address for {asset.currency} on {asset.network}"
    return None
