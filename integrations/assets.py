"""The one registry of assets, keyed by (chain, asset): decimals, the codes each outside system
uses for them, the token contract, and how the hot wallet sends them (if it does at all).

An asset is named by its chain ("eth", "trx", "bsc") and its symbol ("eth", "usdt"), and its id
joins the two ("usdt-eth"). Each exchange adapter maps these to its own codes; the one-word
ticker the market writes for an asset ("usdterc20", "usdttrc20"), which NOWPayments reports and
a payout records as what it sent, is listed here, next to the asset it means.
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
    ticker: str  # the market's one-word ticker ("usdterc20"): what a payout records it sent
    send_method: SendMethod = SendMethod.NOT_SENT
    nowpayments_code: str = ""  # the outcome_currency NOWPayments reports for it, if we take it
    # A client may choose it as their payout (Client.payout_currency and payout_network); the
    # exchange pays it out, so a client asset needs no send_method of ours.
    client_payout: bool = False
    # The fixed places an amount of it is shown and exported with, the same on every chain (a USD
    # stablecoin to six places, as its balances are stored); None: as many as it holds, trailing
    # zeros dropped.
    display_places: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.chain, self.symbol)

    @property
    def id(self) -> str:
        """The registry's name for it ("usdt-eth"): what routing records and configuration use."""
        return f"{self.symbol}-{self.chain}"

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)

    def __str__(self) -> str:
        return f"{self.symbol.upper()} on {self.chain}"


CHAINS: dict[str, Chain] = {
    code: Chain(code, AddressFormat.EVM) for code in ("eth", "bsc", "matic", "arbitrum", "op", "base", "avaxc")
}

# Grouped by currency, in the order a client's payout currency is offered: the choices and the
# database constraint on it list the currencies in this order.
_ASSETS = (
    Asset("btc", "btc", 8, "btc", client_payout=True),
    Asset("eth", "eth", 18, "eth", SendMethod.NATIVE, nowpayments_code="eth", client_payout=True),
    Asset(
        "eth",
        "usdt",
        6,
        "usdterc20",
        SendMethod.TOKEN,
        nowpayments_code="usdterc20",
        client_payout=True,
        display_places=6,
    ),
    Asset("trx", "usdt", 6, "usdttrc20", client_payout=True, display_places=6),
    Asset("bsc", "usdt", 18, "usdtbsc", client_payout=True, display_places=6),
    Asset("sol", "usdt", 6, "usdtsol", client_payout=True, display_places=6),
    # USDT on Polygon: a chain the hot wallet may hold it on (PGP_CHAINS), paid out directly.
    Asset("matic", "usdt", 6, "usdtmatic", SendMethod.TOKEN, client_payout=True, display_places=6),
    Asset("eth", "usdc", 6, "usdc", client_payout=True, display_places=6),
    Asset("bsc", "usdc", 18, "usdcbsc", client_payout=True, display_places=6),
    Asset("sol", "usdc", 6, "usdcsol", client_payout=True, display_places=6),
    Asset("ltc", "ltc", 8, "ltc", client_payout=True),
    Asset("xmr", "xmr", 12, "xmr", client_payout=True),  # 1 piconero
    Asset("bch", "bch", 8, "bch", client_payout=True),
    Asset("bsc", "bnb", 18, "bnbbsc", client_payout=True),
    Asset("trx", "trx", 6, "trx", client_payout=True),
    Asset("doge", "doge", 8, "doge", client_payout=True),
    Asset("xrp", "xrp", 6, "xrp", client_payout=True),  # 1 drop; a memo network (addresses.MEMO_RULES)
    Asset("ada", "ada", 6, "ada", client_payout=True),  # 1 lovelace
    Asset("dot", "dot", 10, "dot", client_payout=True),  # 1 planck
    Asset("sol", "sol", 9, "sol", client_payout=True),
    Asset("matic", "matic", 18, "maticmainnet", SendMethod.NATIVE, client_payout=True),
    Asset("avaxc", "avax", 18, "avaxc", client_payout=True),
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
        if code in (known.symbol, known.nowpayments_code, known.ticker):
            return known.symbol.upper()
    return code.upper()


def address_format(chain: str) -> AddressFormat:
    known = CHAINS.get(chain.lower())
    return known.address_format if known else AddressFormat.OTHER


def client_payout_currencies() -> list[str]:
    """The currencies a client may be paid in (Client.payout_currency's values), each once, in
    the registry's order."""
    return list(dict.fromkeys(known.symbol for known in _ASSETS if known.client_payout))


def client_payout_currency_choices() -> list[tuple[str, str]]:
    """Client.payout_currency's choices: ("usdt", "USDT"), ..."""
    return [(symbol, symbol.upper()) for symbol in client_payout_currencies()]


def fixed_display_places() -> dict[str, int]:
    """The unit ("USDT") -> fixed places of every asset shown with fixed places. A unit is shown
    alike on every chain, so its assets must agree: one that does not is a registry mistake."""
    places: dict[str, int] = {}
    for known in _ASSETS:
        if known.display_places is None:
            continue
        unit = known.symbol.upper()
        if places.setdefault(unit, known.display_places) != known.display_places:
            raise ValueError(f"{unit} is declared with {places[unit]} and {known.display_places} display places")
    shown_trimmed = {k.symbol.upper() for k in _ASSETS if k.display_places is None} & places.keys()
    if shown_trimmed:
        raise ValueError(f"{sorted(shown_trimmed)} declared both with and without fixed display places")
    return places
