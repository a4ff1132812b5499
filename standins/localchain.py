"""The local chain: anvil on loopback with a test ERC-20 "USDT", for the demo and the tests.

anvil comes from the npm package `@foundry-rs/anvil-linux-amd64`, the platform package of
`@foundry-rs/anvil` that holds the binary itself (the wrapper package lists every platform's
package as optional, which a lockfile made here cannot record, so `npm ci` would refuse it);
`npm ci` is the whole install. The token is compiled with solcjs from the same `node_modules`. Every account
is one of anvil's deterministic dev accounts, so the addresses and keys are the same on every
machine and every run: they hold play money only and must never be used anywhere real.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.types import RPCEndpoint, TxParams, TxReceipt
from web3.utils import get_create_address

from pgp_project.money import to_base_units

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
CONTRACT_SOURCE = CONTRACTS_DIR / "TestUSDT.sol"
# npm ci wipes node_modules, so a cache there can never outlive the compiler that filled it.
COMPILE_CACHE_DIR = PROJECT_ROOT / "node_modules" / ".cache" / "pgp-test-usdt"
LOCAL_CHAIN_STATE_FILE = "local_chain.json"

DEFAULT_CHAIN_ID = 31337
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
# anvil's dev accounts for ANVIL_MNEMONIC (m/44'/60'/0'/0/i), public knowledge: play money only.
HOT_WALLET_ACCOUNT_INDEX = 0
TREASURY_ACCOUNT_INDEX = 9
# The treasury of a second sandbox exchange on the same chain (the LetsExchange one): its own
# account, so the two sandboxes never sign with the same nonces.
SECOND_TREASURY_ACCOUNT_INDEX = 4
ANVIL_DEV_PRIVATE_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)

USDT_DECIMALS = 6
HOT_WALLET_USDT_MINT = Decimal("1000000")
TREASURY_USDT_MINT = Decimal("10000000")

# Gas limits for our own calls to TestUSDT, fixed so that the deployment's follow-up calls can be
# sent before the deployment is mined (estimating gas would need the code already on chain).
DEPLOY_GAS = 1_500_000
TOKEN_CALL_GAS = 100_000
PRIORITY_FEE_WEI = Web3.to_wei(1, "gwei")
RPC_TIMEOUT_SECONDS = 10.0

# The ERC-20 surface our code uses, written out so callers need neither the compiler nor the build.
TRANSFER_EVENT_TOPIC = Web3.keccak(text="Transfer(address,address,uint256)").to_0x_hex()


class LocalChainError(RuntimeError):
    """The local chain could not be built, started or deployed."""


@dataclass(frozen=True)
class LocalChain:
    """Everything a process needs to use a running local chain; written to local_chain.json."""

    rpc_url: str
    chain_id: int
    usdt_address: str
    hot_wallet_address: str
    hot_wallet_private_key: str
    treasury_address: str
    treasury_private_key: str

    def env_lines(self) -> list[str]:
        """The settings the project reads from the environment, as `NAME=value` lines."""
        return [
            f"ETH_RPC_URL={self.rpc_url}",
            f"ETH_CHAIN_ID={self.chain_id}",
            f"HOT_WALLET_PRIVATE_KEY={self.hot_wallet_private_key}",
            f"USDT_CONTRACT_ADDRESS={self.usdt_address}",
            f"SANDBOX_TREASURY_PRIVATE_KEY={self.treasury_private_key}",
        ]

    def write_json(self, path: Path) -> None:
        # Write then rename, so a reader never sees half a file.
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=2) + "\n")
        partial.replace(path)

    @property
    def second_treasury_private_key(self) -> str:
        """The treasury of a second sandbox exchange (deploy_local_chain funds it like the first)."""
        return ANVIL_DEV_PRIVATE_KEYS[SECOND_TREASURY_ACCOUNT_INDEX]

    @property
    def second_treasury_address(self) -> str:
        return str(Account.from_key(self.second_treasury_private_key).address)

    @classmethod
    def read_json(cls, path: Path) -> LocalChain:
        return cls(**json.loads(path.read_text()))


# --- building the token ---------------------------------------------------------------------


def find_anvil(project_root: Path = PROJECT_ROOT) -> Path:
    """The anvil binary that `npm ci` links into node_modules/.bin."""
    anvil = project_root / "node_modules" / ".bin" / "anvil"
    if not anvil.exists():
        raise LocalChainError(f"anvil not found at {anvil}: run `npm ci` in {project_root} first")
    return anvil


_SOLCJS_COMPILE = """
const solc = require('solc');
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


def _solc_standard_input(source_path: Path, contract: str) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {source_path.name: {"content": source_path.read_text()}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {contract: ["abi", "evm.bytecode.object"]}},
        },
    }


def compile_test_usdt(project_root: Path = PROJECT_ROOT) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode hex) of TestUSDT; compiled once per source and settings, then cached."""
    return compile_contract(CONTRACT_SOURCE, "TestUSDT", project_root)


def compile_contract(
    source_path: Path, contract: str, project_root: Path = PROJECT_ROOT
) -> tuple[list[dict[str, Any]], str]:
    """(abi, bytecode hex) of `contract` in `source_path`, with the pinned solcjs; cached."""
    standard_input = json.dumps(_solc_standard_input(source_path, contract), sort_keys=True)
    solc_package = project_root / "node_modules" / "solc" / "package.json"
    if not solc_package.exists():
        raise LocalChainError(f"solc not found under {project_root / 'node_modules'}: run `npm ci` first")
    solc_version = json.loads(solc_package.read_text())["version"]
    # The key covers everything that changes the output: source, settings and compiler version.
    cache_key = hashlib.sha256(f"{solc_version}\n{standard_input}".encode()).hexdigest()
    cached = COMPILE_CACHE_DIR / f"{cache_key}.json"
    if cached.exists():
        artifact = json.loads(cached.read_text())
        return artifact["abi"], artifact["bytecode"]

    result = subprocess.run(
        ["node", "-e", _SOLCJS_COMPILE],
        input=standard_input,
        capture_output=True,
        text=True,
        cwd=project_root,  # so `require('solc')` resolves to the pinned one in node_modules
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise LocalChainError(f"solcjs failed: {result.stderr.strip()[-2000:]}")
    output = json.loads(result.stdout)["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        problems = "\n".join(e["formattedMessage"] for e in errors)
        raise LocalChainError(f"{source_path.name} does not compile:\n{problems}")
    compiled = output["contracts"][source_path.name][contract]
    abi, bytecode = compiled["abi"], "0x" + compiled["evm"]["bytecode"]["object"]

    COMPILE_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.partial")  # concurrent starts must not interleave
    partial.write_text(json.dumps({"abi": abi, "bytecode": bytecode}))
    partial.replace(cached)
    return abi, bytecode


# --- running anvil --------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (another process could still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def rpc_chain_id(rpc_url: str, timeout: float = 2.0) -> int:
    """eth_chainId, raising on any failure; the cheapest proof that the node answers."""
    reply = requests.post(
        rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=timeout
    )
    reply.raise_for_status()
    return int(reply.json()["result"], 16)


def start_anvil(
    port: int,
    *,
    block_time: float | None,
    chain_id: int = DEFAULT_CHAIN_ID,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    startup_timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Start anvil and return once its RPC answers; block_time None means one block per transaction."""
    argv = [
        str(find_anvil()),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        ANVIL_MNEMONIC,
        "--accounts",
        str(len(ANVIL_DEV_PRIVATE_KEYS)),
    ]
    if block_time is not None:
        argv += ["--block-time", _format_block_time(block_time)]
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child, closed below
    try:
        process = subprocess.Popen(
            argv,
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C meant for our command does not kill the chain under
            # it, and stop_anvil can end the whole group even if .bin/anvil becomes a launcher.
            start_new_session=True,
        )
    finally:
        if log:
            log.close()
    rpc_url = f"http://{host}:{port}"
    deadline = time.monotonic() + startup_timeout
    while True:
        if process.poll() is not None:
            raise LocalChainError(f"anvil exited with code {process.returncode} while starting (port {port} in use?)")
        try:
            answered = rpc_chain_id(rpc_url, timeout=1.0)
        except (requests.RequestException, ValueError, KeyError):
            answered = None
        if answered is not None:
            if answered != chain_id:
                stop_anvil(process)
                raise LocalChainError(f"{rpc_url} answers chain id {answered}, not {chain_id}: another node there?")
            return process
        if time.monotonic() > deadline:
            stop_anvil(process)
            raise LocalChainError(f"anvil did not answer on {rpc_url} within {startup_timeout}s")
        time.sleep(0.1)


def _format_block_time(block_time: float) -> str:
    if block_time <= 0:
        raise LocalChainError("block_time must be positive (or None for one block per transaction)")
    return str(int(block_time)) if float(block_time).is_integer() else str(block_time)


def stop_anvil(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop anvil: SIGTERM to its whole process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=timeout)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)  # start_new_session made pid the group id


# --- using the chain ------------------------------------------------------------------------


def connect(rpc_url: str, timeout: float = RPC_TIMEOUT_SECONDS) -> Web3:
    """A Web3 on rpc_url whose every call gives up after `timeout` seconds."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def mine_blocks(w3: Web3, count: int = 1) -> None:
    """Mine `count` empty blocks now: with automine, confirmations advance only when told to."""
    if count < 1:
        return
    reply = w3.provider.make_request(RPCEndpoint("anvil_mine"), [hex(count)])
    if "error" in reply:  # not anvil: evm_mine is the call every dev node understands
        for _ in range(count):
            reply = w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            if "error" in reply:
                raise LocalChainError(f"cannot mine blocks: {reply['error']}")


def eip1559_fees(w3: Web3) -> dict[str, int]:
    """Fees that get a transaction into the next block even if the base fee doubles."""
    base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])
    return {"maxFeePerGas": 2 * base_fee + PRIORITY_FEE_WEI, "maxPriorityFeePerGas": PRIORITY_FEE_WEI}


def sign_and_send(w3: Web3, account: LocalAccount, tx: TxParams) -> HexBytes:
    """Sign locally (as production does: the node never holds our keys) and broadcast."""
    signed = account.sign_transaction(tx)  # type: ignore[arg-type]
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def wait_for_success(w3: Web3, tx_hash: HexBytes, timeout: float = 30.0) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
    if receipt["status"] != 1:
        raise LocalChainError(f"transaction {tx_hash.to_0x_hex()} reverted")
    return receipt


def deploy_local_chain(rpc_url: str) -> LocalChain:
    """Deploy TestUSDT from the hot wallet and fund the hot wallet and the sandbox treasuries."""
    w3 = connect(rpc_url)
    chain_id = w3.eth.chain_id
    hot_wallet = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[HOT_WALLET_ACCOUNT_INDEX])
    treasury = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[TREASURY_ACCOUNT_INDEX])
    second_treasury = Account.from_key(ANVIL_DEV_PRIVATE_KEYS[SECOND_TREASURY_ACCOUNT_INDEX])
    abi, bytecode = compile_test_usdt()

    # Deploy and the mints go out back to back with consecutive nonces; on an interval-mined
    # chain they then share a block instead of costing one block time each.
    nonce = w3.eth.get_transaction_count(hot_wallet.address, "pending")
    usdt_address = Web3.to_checksum_address(get_create_address(hot_wallet.address, nonce))
    fees = eip1559_fees(w3)
    common: dict[str, Any] = {"chainId": chain_id, "from": hot_wallet.address, **fees}
    deploy_tx: TxParams = {**common, "nonce": nonce, "gas": DEPLOY_GAS, "data": bytecode}  # type: ignore[typeddict-item]
    hashes = [sign_and_send(w3, hot_wallet, deploy_tx)]
    token = w3.eth.contract(address=usdt_address, abi=abi)
    for offset, (recipient, amount) in enumerate(
        [
            (hot_wallet.address, HOT_WALLET_USDT_MINT),
            (treasury.address, TREASURY_USDT_MINT),
            (second_treasury.address, TREASURY_USDT_MINT),
        ],
        start=1,
    ):
        mint_tx = token.functions.mint(recipient, to_base_units(amount, USDT_DECIMALS)).build_transaction(
            cast(TxParams, {**common, "nonce": nonce + offset, "gas": TOKEN_CALL_GAS})
        )
        hashes.append(sign_and_send(w3, hot_wallet, mint_tx))
    receipts = [wait_for_success(w3, tx_hash) for tx_hash in hashes]
    if Web3.to_checksum_address(str(receipts[0]["contractAddress"])) != usdt_address:
        raise LocalChainError("TestUSDT landed at an unexpected address")

    return LocalChain(
        rpc_url=rpc_url,
        chain_id=chain_id,
        usdt_address=usdt_address,
        hot_wallet_address=hot_wallet.address,
        hot_wallet_private_key=ANVIL_DEV_PRIVATE_KEYS[HOT_WALLET_ACCOUNT_INDEX],
        treasury_address=treasury.address,
        treasury_private_key=ANVIL_DEV_PRIVATE_KEYS[TREASURY_ACCOUNT_INDEX],
    )
