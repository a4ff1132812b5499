"""An EVM node, over JSON-RPC (web3.py + eth-account): EIP-1559 fees, signing, broadcast,
receipts, ERC-20 transfers and balances.

Amounts cross this boundary as integer base units (wei, 10^-6 USDT); `pgp_project.money` does
the exact Decimal conversion. Nothing here keeps state: the database is the truth, and this
module only builds, signs and reads transactions.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import Wei

from pgp_project.operations.transient import TransientError

logger = logging.getLogger(__name__)

ETH_TRANSFER_GAS = 21_000
GAS_LIMIT_MARGIN_PERCENT = 20  # estimates can move between estimate and inclusion
# The ERC-20 calls a host payment needs, and the event that proves a transfer; the token's full
# surface lives with the stand-ins.
ERC20_TRANSFER_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"name": "from", "type": "address", "indexed": True},
            {"name": "to", "type": "address", "indexed": True},
            {"name": "value", "type": "uint256", "indexed": False},
        ],
    },
]
TRANSFER_TOPIC = HexBytes(Web3.keccak(text="Transfer(address,address,uint256)"))

# Node answers meaning "this exact transaction, or one with its nonce, is already known".
ALREADY_KNOWN_MARKERS = ("already known", "known transaction", "already imported", "alreadyknown")
NONCE_TOO_LOW_MARKERS = ("nonce too low", "nonce is too low", "noncetoolow")


class ChainError(TransientError):
    """A chain call failed in a way worth retrying later (node down, timeout, fees above our cap)."""


class FeeAboveCap(ChainError):
    """Network fees are above our configured cap: wait rather than overpay."""


class TransferWouldRevert(Exception):
    """Estimating the transfer shows the chain would revert it: sending it would only burn gas."""


class NonceTakenByAnotherTransaction(Exception):
    """Our nonce was consumed by a transaction that is not ours: needs an operator."""


@dataclass(frozen=True)
class SignedTransfer:
    raw_transaction: str  # 0x-hex
    tx_hash: str  # 0x-hex
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    gas_limit: int


@dataclass(frozen=True)
class Receipt:
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: int


class EvmNode:
    def __init__(self, rpc_url: str, *, chain_id: int, timeout: float = 10.0) -> None:
        # No retries hidden inside web3: a failed call fails fast, and the task's own bounded
        # retry (with backoff, recorded on the payment) decides what happens next.
        self.w3 = Web3(
            Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        )
        self.chain_id = chain_id

    # --- reads -------------------------------------------------------------------------------

    def pending_nonce(self, address: str) -> int:
        return self._rpc(lambda: self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    def eth_balance(self, address: str) -> int:
        return self._rpc(lambda: self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def token_balance(self, token: str, address: str) -> int:
        contract = self._token(token)
        return self._rpc(lambda: contract.functions.balanceOf(Web3.to_checksum_address(address)).call())

    def block_number(self) -> int:
        return self._rpc(lambda: self.w3.eth.block_number)

    def gas_price(self) -> int:
        """The node's current gas price (eth_gasPrice), in wei."""
        return int(self._rpc(lambda: self.w3.eth.gas_price))

    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            raw = self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        except TransactionNotFound:
            return None
        if raw is None:
            return None
        return Receipt(
            status=int(raw["status"]),
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            effective_gas_price=int(raw.get("effectiveGasPrice", 0)),
        )

    def transaction_at_nonce(self, sender: str, nonce: int, *, confirmations: int) -> tuple[str, int] | None:
        """The transaction that used `sender`'s `nonce`, as (hash, block), read from the block
        itself (not from a receipt a lagging node may not have), once that block has at least
        `confirmations`; None if the nonce is not used that deep, or the node cannot say (a
        pruned node without the state of older blocks)."""
        sender = Web3.to_checksum_address(sender)

        def used_by(block: int) -> bool:
            return int(self._rpc(lambda: self.w3.eth.get_transaction_count(sender, block))) > nonce

        try:
            deep = self.block_number() - max(confirmations, 1) + 1
            if deep < 0 or not used_by(deep):
                return None
            low, high, step = deep, deep, 1
            while low > 0 and used_by(low):  # back off until before the nonce was used ...
                high, low, step = low, max(0, low - step), step * 2
            while high - low > 1:  # ... then the first block in which it was
                middle = (low + high) // 2
                low, high = (low, middle) if used_by(middle) else (middle, high)
            block = self._rpc(lambda: self.w3.eth.get_block(high, full_transactions=True))
        except Web3RPCError:
            return None
        for tx in block["transactions"]:
            if tx["from"] == sender and int(tx["nonce"]) == nonce:
                return HexBytes(tx["hash"]).to_0x_hex(), high
        return None

    def value_delivered(self, tx_hash: str, to: str) -> int | None:
        """Wei a mined, successful transaction sent to `to`; None if it is not both."""
        receipt = self.receipt(tx_hash)
        if receipt is None or receipt.status != 1:
            return None
        tx = self._rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
        return int(tx["value"]) if (tx.get("to") or "").lower() == to.lower() else 0

    def token_delivered(self, tx_hash: str, token: str, to: str) -> int | None:
        """Token units a mined, successful transaction moved to `to` (its Transfer events)."""
        receipt = self.receipt(tx_hash)
        if receipt is None or receipt.status != 1:
            return None
        raw = self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        contract = self._token(token)
        delivered = 0
        for log in raw["logs"]:
            if log["address"].lower() != token.lower() or not log["topics"] or log["topics"][0] != TRANSFER_TOPIC:
                continue
            event = contract.events.Transfer().process_log(log)
            if event["args"]["to"].lower() == to.lower():
                delivered += int(event["args"]["value"])
        return delivered

    # --- history (reconciliation) ---------------------------------------------------------

    def block_timestamp(self, number: int) -> int:
        return int(self._rpc(lambda: self.w3.eth.get_block(number))["timestamp"])

    def transactions_from(self, number: int, senders: set[str]) -> list[dict[str, Any]]:
        """The transactions of block `number` sent by any of `senders` (lower-case addresses)."""
        block = self._rpc(lambda: self.w3.eth.get_block(number, full_transactions=True))
        return [dict(tx) for tx in block["transactions"] if str(tx["from"]).lower() in senders]

    def raw_receipt(self, tx_hash: str) -> dict[str, Any]:
        return dict(self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))))

    def token_transfers_from(
        self, token: str, sender: str, from_block: int, to_block: int
    ) -> list[tuple[str, int, str, int]]:
        """Every `Transfer` of `token` out of `sender` in the blocks, as (tx hash, block, to,
        units): whoever started the transaction (a transferFrom by a spender counts too)."""
        contract = self._token(token)
        sender_topic = HexBytes(bytes(12) + HexBytes(Web3.to_checksum_address(sender)))
        logs = self._rpc(
            lambda: self.w3.eth.get_logs(
                {
                    "address": Web3.to_checksum_address(token),
                    "fromBlock": from_block,
                    "toBlock": to_block,
                    "topics": [TRANSFER_TOPIC, sender_topic],
                }
            )
        )
        transfers = []
        for log in logs:
            event = contract.events.Transfer().process_log(log)
            transfers.append(
                (
                    HexBytes(log["transactionHash"]).to_0x_hex(),
                    int(log["blockNumber"]),
                    str(event["args"]["to"]),
                    int(event["args"]["value"]),
                )
            )
        return transfers

    def confirmations(self, receipt: Receipt) -> int:
        return max(0, self.block_number() - receipt.block_number + 1)

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node knows this transaction (pending or mined)."""
        try:
            return self._rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash))) is not None
        except TransactionNotFound:
            return False

    # --- fees and signing --------------------------------------------------------------------

    def fees(self, max_fee_cap_wei: int) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas): twice the base fee plus the tip, which stays
        valid through several full blocks; refused above the cap instead of overpaying."""
        block = self._rpc(lambda: self.w3.eth.get_block("latest"))
        base_fee = int(block.get("baseFeePerGas", 0))
        tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee))
        max_fee = 2 * base_fee + tip
        if max_fee > max_fee_cap_wei:
            if base_fee + tip > max_fee_cap_wei:
                raise FeeAboveCap(f"network fee {base_fee + tip} wei/gas is above the cap {max_fee_cap_wei}")
            max_fee = max_fee_cap_wei
        return max_fee, tip

    def estimate_gas(self, *, sender: str, to: str, amount_wei: int = 0, token: str = "", amount_units: int = 0) -> int:
        """Gas for a transfer of ETH (`amount_wei` to `to`) or of a token (`amount_units`), with a
        margin: a contract wallet needs more than a plain 21,000 to receive ETH. A transfer the
        chain would revert is refused here, before anything is signed."""
        sender, to = Web3.to_checksum_address(sender), Web3.to_checksum_address(to)
        try:
            if token:
                call = self._token(token).functions.transfer(to, amount_units)
                estimate = self._rpc(lambda: call.estimate_gas({"from": sender}))
            else:
                value = Wei(amount_wei)
                estimate = self._rpc(lambda: self.w3.eth.estimate_gas({"from": sender, "to": to, "value": value}))
        except ContractLogicError as exc:
            raise TransferWouldRevert(f"the chain would revert this transfer to {to}: {exc}") from exc
        except Web3RPCError as exc:
            if "revert" in str(exc).lower():
                raise TransferWouldRevert(f"the chain would revert this transfer to {to}: {exc}") from exc
            raise ChainError(f"gas estimate refused: {exc}") from exc  # a node's own trouble: later
        return max(int(estimate), ETH_TRANSFER_GAS) * (100 + GAS_LIMIT_MARGIN_PERCENT) // 100

    @method_decorator(sensitive_variables("private_key"))
    def sign_eth_transfer(
        self, *, private_key: str, to: str, amount_wei: int, nonce: int, fees: tuple[int, int], gas: int
    ) -> SignedTransfer:
        tx = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": Web3.to_checksum_address(to),
            "value": amount_wei,
            "gas": gas,
            "maxFeePerGas": fees[0],
            "maxPriorityFeePerGas": fees[1],
        }
        return self._sign(tx, private_key)

    @method_decorator(sensitive_variables("private_key"))
    def sign_token_transfer(
        self, *, private_key: str, token: str, to: str, amount_units: int, nonce: int, fees: tuple[int, int], gas: int
    ) -> SignedTransfer:
        sender = Account.from_key(private_key).address
        call = self._token(token).functions.transfer(Web3.to_checksum_address(to), amount_units)
        tx = call.build_transaction(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "from": sender,
                "gas": gas,
                "maxFeePerGas": fees[0],
                "maxPriorityFeePerGas": fees[1],
            }
        )
        return self._sign(tx, private_key)

    @method_decorator(sensitive_variables("private_key"))
    def _sign(self, tx: dict[str, Any], private_key: str) -> SignedTransfer:
        signed = Account.sign_transaction(tx, private_key)
        return SignedTransfer(
            raw_transaction=HexBytes(signed.raw_transaction).to_0x_hex(),
            tx_hash=HexBytes(signed.hash).to_0x_hex(),
            nonce=int(tx["nonce"]),
            max_fee_per_gas=int(tx["maxFeePerGas"]),
            max_priority_fee_per_gas=int(tx["maxPriorityFeePerGas"]),
            gas_limit=int(tx["gas"]),
        )

    # --- broadcast ---------------------------------------------------------------------------

    def broadcast(self, raw_transaction: str, tx_hash: str) -> None:
        """Send signed bytes. Sending the same bytes again is safe: "already known", or "nonce
        too low" while the node knows our hash, means our transaction is in, i.e. success."""
        try:
            sent = self._rpc(lambda: self.w3.eth.send_raw_transaction(HexBytes(raw_transaction)))
        except Web3RPCError as exc:
            message = str(exc).lower()
            if any(marker in message for marker in ALREADY_KNOWN_MARKERS):
                return
            if any(marker in message for marker in NONCE_TOO_LOW_MARKERS):
                if self.is_known(tx_hash):
                    return
                raise NonceTakenByAnotherTransaction(f"nonce of {tx_hash} was used by another transaction") from exc
            raise ChainError(f"broadcast refused: {exc}") from exc
        if HexBytes(sent).to_0x_hex().lower() != tx_hash.lower():
            raise ChainError(f"node reported hash {HexBytes(sent).to_0x_hex()} for our {tx_hash}")

    # --- helpers -----------------------------------------------------------------------------

    def _token(self, token: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(token), abi=ERC20_TRANSFER_ABI)

    def _rpc(self, call: Any) -> Any:
        """Run one node call; transport failures become ChainError (retry later), while the
        node's own answers (TransactionNotFound, Web3RPCError) pass through to the caller."""
        try:
            return call()
        except OSError as exc:  # requests' ConnectionError and Timeout derive from OSError
            # `from None`: the transport error's text holds the RPC URL, which may carry a key.
            raise ChainError(f"EVM node unreachable: {type(exc).__name__}") from None
