"""The one registry of assets, keyed by (chain, asset): decimals, the codes each outside system
uses for them, the token contract, and how the hot wallet sends them (if it does at all).

A chain is named by ChangeNOW's network code ("eth", "trx", "bsc"), an asset by ChangeNOW's
currency code ("eth", "usdt"); NOWPayments and ChangeNOW's address check use one-word tickers
("usdterc20", "usdttrc20") that are listed here, next to the asset they mean.
"""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class AddressFormat(StrEnum):
    EVM = "evm"  # 0x + 40 hex digits, EIP-55 checksum
    OTHER = "other"  # checked by the exchange (ChangeNOW /v2/validate/address) before any payout


class SendMethod(StrEnum):
    """How the hot wallet pays this asset out, when it does."""

    NATIVE = "native"  # the chain's own coin: a value transfer
    TOKEN = "token"  # noqa: S105 - a token contract's transfer, not a secret
    NOT_SENT = "not_sent"  # never sent by us: an exchange pays it out


@dataclass(frozen=True)
class Chain:
    code: str
    address_format: AddressFormat


@dataclass(frozen=True)
class Asset:
    chain: str
    symbol: str
    decimals: int
    changenow_ticker: str  # ChangeNOW's one-word ticker, which /v2/validate/address takes
    send_method: SendMethod = SendMethod.NOT_SENT
    nowpayments_code: str = ""  # the outcome_currency NOWPayments reports for it, if we take it

    @property
    def key(self) -> tuple[str, str]:
        return (self.chain, self.symbol)

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)

    def __str__(self) -> str:
        return f"{self.symbol.upper()} on {self.chain}"


CHAINS: dict[str, Chain] = {
    code: Chain(code, AddressFormat.EVM) for code in ("eth", "bsc", "matic", "arbitrum", "op", "base", "avaxc")
}

_ASSETS = (
    Asset("eth", "eth", 18, "eth", SendMethod.NATIVE, nowpayments_code="eth"),
    Asset("eth", "usdt", 6, "usdterc20", SendMethod.TOKEN, nowpayments_code="usdterc20"),
    Asset("eth", "usdc", 6, "usdc"),
    Asset("trx", "usdt", 6, "usdttrc20"),
    Asset("trx", "trx", 6, "trx"),
    Asset("bsc", "usdt", 18, "usdtbsc"),
    Asset("bsc", "usdc", 18, "usdcbsc"),
    Asset("bsc", "bnb", 18, "bnbbsc"),
    Asset("sol", "usdt", 6, "usdtsol"),
    Asset("sol", "usdc", 6, "usdcsol"),
    Asset("sol", "sol", 9, "sol"),
    Asset("matic", "matic", 18, "maticmainnet", SendMethod.NATIVE),
    Asset("matic", "usdt", 6, "usdtmatic", SendMethod.TOKEN),
    Asset("avaxc", "avax", 18, "avaxc"),
    Asset("btc", "btc", 8, "btc"),
    Asset("ltc", "ltc", 8, "ltc"),
    Asset("doge", "doge", 8, "doge"),
)
ASSETS: dict[tuple[str, str], Asset] = {asset.key: asset for asset in _ASSETS}

# The two assets the gateway itself holds: the ETH its payments arrive in, and the USDT
# (ERC-20) the micro-batches convert it into and client payouts are funded from.
ETH = ASSETS[("eth", "eth")]
USDT_ERC20 = ASSETS[("eth", "usdt")]


def asset(chain: str, symbol: str) -> Asset:
    try:
        return ASSETS[(chain.lower(), symbol.lower())]
    except KeyError:
        raise LookupError(f"no asset {symbol!r} on chain {chain!r} in the registry") from None


def asset_by_nowpayments_code(code: str) -> Asset | None:
    code = code.lower()
    return next((a for a in _ASSETS if a.nowpayments_code and a.nowpayments_code == code), None)


def unit_symbol(code: str) -> str:
    """The unit an amount in this currency code is shown in, whichever system's code it is:
    "usdterc20" and "usdt" -> "USDT", "eth" -> "ETH", "usd" -> "USD"; an unknown code upper-cased."""
    code = (code or "").lower()
    for known in _ASSETS:
        if code in (known.symbol, known.nowpayments_code, known.changenow_ticker):
            return known.symbol.upper()
    return code.upper()


def changenow_ticker(symbol: str, chain: str) -> str:
    """ChangeNOW's one-word ticker for an asset; for one not listed, ChangeNOW's own rule: the
    currency alone on its home network, else currency + network."""
    symbol, chain = symbol.lower(), chain.lower()
    known = ASSETS.get((chain, symbol))
    if known is not None:
        return known.changenow_ticker
    return symbol if chain in ("", symbol) else symbol + chain


def address_format(chain: str) -> AddressFormat:
    known = CHAINS.get(chain.lower())
    return known.address_format if known else AddressFormat.OTHER
