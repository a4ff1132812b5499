"""The hot wallet's sends on an EVM chain in a time range, for reconciliation: the blocks whose
timestamps fall in the range, scanned for transactions from the keyring's addresses, plus the
token `Transfer` events out of those addresses (whoever started them). Scanning blocks is what a
node alone allows; it is bounded: a longer range is reported, not silently cut. It suits the local
chain and small ranges; on mainnet an indexer (an explorer's account-transactions API) would list
the wallet's transactions instead.
"""

from datetime import datetime
from typing import Any

from integrations.assets import Asset
from payouts.host_payments.ports import ChainScan, ChainSend
from pgp_project.money import from_base_units
from pgp_project.money_display import format_amount

from .node import EvmNode


def _first_block_at_or_after(node: EvmNode, timestamp: int, latest: int, cache: dict[int, int]) -> int:
    """The first block whose timestamp is >= `timestamp` (latest + 1 if none): a binary search."""
    low, high = 0, latest + 1
    while low < high:
        middle = (low + high) // 2
        if middle not in cache:
            cache[middle] = node.block_timestamp(middle)
        if cache[middle] >= timestamp:
            high = middle
        else:
            low = middle + 1
    return low


def block_range(node: EvmNode, start: datetime, end: datetime) -> tuple[int, int] | None:
    """The blocks whose timestamps fall in [start, end), as (first, last); None if none do."""
    latest = node.block_number()
    cache: dict[int, int] = {}
    first = _first_block_at_or_after(node, int(start.timestamp()) + (start.microsecond > 0), latest, cache)
    last = _first_block_at_or_after(node, int(end.timestamp()) + (end.microsecond > 0), latest, cache) - 1
    return (first, last) if first <= last else None


def scan_sends(
    node: EvmNode,
    *,
    senders: set[str],
    native: Asset,
    tokens: dict[str, tuple[str, Asset]],
    start: datetime,
    end: datetime,
    max_blocks: int,
) -> ChainScan:
    """Every send out of `senders` in [start, end): value transfers of the native asset and
    Transfer events of each token (symbol -> (contract, asset))."""
    addresses = sorted(senders)
    blocks = block_range(node, start, end)
    if blocks is None:
        return ChainScan(addresses, None, None, [])
    first, last = blocks
    unscanned = ""
    if last - first + 1 > max_blocks:
        unscanned = (
            f"blocks {first + max_blocks}-{last} ({last - first + 1} in the range, at most {max_blocks} scanned)"
        )
        last = first + max_blocks - 1
    sends: dict[str, ChainSend] = {}
    for number in range(first, last + 1):
        for tx in node.transactions_from(number, senders):
            tx_hash = _hex(tx["hash"])
            receipt = node.raw_receipt(tx_hash)
            succeeded = int(receipt["status"]) == 1
            to = str(tx.get("to") or receipt.get("contractAddress") or "")
            value = int(tx["value"])
            send = sends[tx_hash] = ChainSend(
                tx_hash=tx_hash,
                block=number,
                sender=str(tx["from"]),
                succeeded=succeeded,
                network_fee=int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0)),
                transfers=[(native.symbol, to, value)] if succeeded and value else [],
            )
            # What a send that moved nothing (a reverted one, a bare call) was addressed to.
            send.description = f"to {to or '(contract creation)'}" + ("" if succeeded else ", reverted")
    for symbol, (contract, _) in tokens.items():
        for sender in addresses:
            for tx_hash, number, to, units in node.token_transfers_from(contract, sender, first, last):
                key = tx_hash.lower()
                if key not in sends:  # moved out of our address by a transaction someone else sent
                    sends[key] = ChainSend(key, number, sender, sent_by_us=False)
                sends[key].transfers.append((symbol, to, units))
    for send in sends.values():
        moved = [
            f"{format_amount(from_base_units(units, _decimals(symbol, native, tokens)), symbol.upper())} to {to}"
            for symbol, to, units in send.transfers
        ]
        send.description = "; ".join(moved or [send.description or "a transfer"]) + f" (block {send.block})"
    return ChainScan(addresses, first, last, sorted(sends.values(), key=lambda s: (s.block, s.tx_hash)), unscanned)


def _decimals(symbol: str, native: Asset, tokens: dict[str, tuple[str, Asset]]) -> int:
    return native.decimals if symbol == native.symbol else tokens[symbol][1].decimals


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return (text if text.startswith("0x") else "0x" + text).lower()
