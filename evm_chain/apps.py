from django.apps import AppConfig


class EvmChainConfig(AppConfig):
    """The EVM chain adapter: one instance per EVM chain in PGP_CHAINS. It owns what only EVM
    chains have (nonces, gas, EIP-1559 fees, ERC-20 tokens) and its own tables; the rest of the
    system reaches it only through the chain port (payouts/host_payments/ports.py)."""

    name = "evm_chain"
    verbose_name = "EVM chains"
