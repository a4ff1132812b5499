"""The sandbox's view of the local chain: deposits to payin addresses, payouts from the treasury."""

import logging
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxParams

from pgp_project.money import from_base_units, to_base_units
from standins.erc20 import ERC20_ABI
from standins.localchain import TOKEN_CALL_GAS, TRANSFER_EVENT_TOPIC, connect, eip1559_fees
from standins.sandbox_changenow.assets import ASSETS, Asset
from standins.sandbox_changenow.exchanges import OnChainTransfer

logger = logging.getLogger("standins.sandbox_changenow")

NATIVE_TRANSFER_GAS = 21_000
ETH = ASSETS[("eth", "eth")]
USDT_ON_ETH = ASSETS[("usdt", "eth")]


@dataclass(frozen=True)
class SeenTransfer:
    """ETH or USDT that arrived at an address we watch."""

    to_address: str  # lowercase
    asset: Asset
    amount: Decimal
    tx_hash: str
    block_number: int


class SandboxChain:
    """Reads and writes the anvil chain; used only from the watcher thread."""

    def __init__(self, rpc_url: str, usdt_address: str, treasury_private_key: str, rpc_timeout: float = 5.0) -> None:
        self.w3: Web3 = connect(rpc_url, timeout=rpc_timeout)
        self.usdt = self.w3.eth.contract(address=Web3.to_checksum_address(usdt_address), abi=ERC20_ABI)
        self.treasury = Account.from_key(treasury_private_key)
        self._next_nonce = 0

    def check_ready(self) -> int:
        """Fail fast at start-up rather than on the first payout; returns the chain id."""
        chain_id = self.w3.eth.chain_id
        if not self.w3.eth.get_code(self.usdt.address):
            raise RuntimeError(f"no contract at USDT address {self.usdt.address}: deploy the local chain first")
        decimals = self.usdt.functions.decimals().call()
        if decimals != USDT_ON_ETH.decimals:
            raise RuntimeError(f"USDT contract has {decimals} decimals, expected {USDT_ON_ETH.decimals}")
        return chain_id

    def latest_block(self) -> int:
        return self.w3.eth.block_number

    def transfers_to(self, addresses: Collection[str], from_block: int, to_block: int) -> list[SeenTransfer]:
        """ETH and USDT sent to any of `addresses` (lowercase) in blocks from_block..to_block."""
        if not addresses or from_block > to_block:
            return []
        seen: list[SeenTransfer] = []
        for number in range(from_block, to_block + 1):
            # Full transactions are dicts; web3's types cannot say so for a runtime flag.
            block: Any = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                to = (tx.get("to") or "").lower()
                if to in addresses and tx["value"] > 0:
                    seen.append(
                        SeenTransfer(
                            to_address=to,
                            asset=ETH,
                            amount=from_base_units(int(tx["value"]), ETH.decimals),
                            tx_hash=tx["hash"].to_0x_hex(),
                            block_number=number,
                        )
                    )
        logs = self.w3.eth.get_logs(
            {
                "fromBlock": from_block,
                "toBlock": to_block,
                "address": self.usdt.address,
                "topics": [TRANSFER_EVENT_TOPIC],
            }
        )
        for log in logs:
            event = self.usdt.events.Transfer().process_log(log)
            to = event["args"]["to"].lower()
            if to in addresses and event["args"]["value"] > 0:
                seen.append(
                    SeenTransfer(
                        to_address=to,
                        asset=USDT_ON_ETH,
                        amount=from_base_units(int(event["args"]["value"]), USDT_ON_ETH.decimals),
                        tx_hash=log["transactionHash"].to_0x_hex(),
                        block_number=int(log["blockNumber"]),
                    )
                )
        return seen

    def sign_transfer(self, asset: Asset, to_address: str, amount: Decimal, purpose: str) -> OnChainTransfer:
        """Sign (not yet send) a transfer of `amount` of ETH or USDT from the treasury."""
        to_address = Web3.to_checksum_address(to_address)
        nonce = max(self._next_nonce, self.w3.eth.get_transaction_count(self.treasury.address, "pending"))
        common: dict[str, Any] = {"chainId": self.w3.eth.chain_id, "from": self.treasury.address, "nonce": nonce}
        common.update(eip1559_fees(self.w3))
        tx: Any
        if asset.is_native_eth:
            tx = {**common, "to": to_address, "value": to_base_units(amount, ETH.decimals), "gas": NATIVE_TRANSFER_GAS}
        elif asset.is_erc20_usdt:
            value = to_base_units(amount, USDT_ON_ETH.decimals)
            tx = self.usdt.functions.transfer(to_address, value).build_transaction(
                cast(TxParams, {**common, "gas": TOKEN_CALL_GAS})
            )
        else:
            raise ValueError(f"{asset.currency} on {asset.network} is not on the local chain")
        signed = self.treasury.sign_transaction(tx)
        self._next_nonce = nonce + 1
        return OnChainTransfer(
            tx_hash=signed.hash.to_0x_hex(), raw_transaction=bytes(signed.raw_transaction), purpose=purpose
        )

    def broadcast(self, transfer: OnChainTransfer) -> None:
        """Send the signed bytes; a node that already has them is not an error."""
        try:
            self.w3.eth.send_raw_transaction(transfer.raw_transaction)
        except ValueError as error:
            if "already known" not in str(error).lower():
                raise

    def receipt_status(self, tx_hash: str) -> int | None:
        """1 mined and succeeded, 0 mined and reverted, None not mined (yet)."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None
        return int(receipt["status"])
