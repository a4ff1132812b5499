"""A local stand-in for LetsExchange API v1 that settles exchanges on the local anvil chain.

sandbox = SandboxLetsExchange(LetsExchangeSandboxConfig(rpc_url=..., usdt_address=...,
                                                        treasury_private_key=..., api_key=...))
base_url = sandbox.start()  # background threads; port 0 picks a free port
...
sandbox.stop()

Only its API front is its own (api.py: the calls and their shapes; server.py: the key, the error
shapes, the prices); the engine is the ChangeNOW sandbox's, shared (standins.sandbox_changenow:
host.py, exchanges.py, watcher.py, chain.py, pricing.py, faults.py). What it imitates comes from
LetsExchange's API reference, https://api-doc.letsexchange.io; each module names its sections.
"""

from standins.sandbox_letsexchange.server import LetsExchangeSandboxConfig, SandboxLetsExchange

__all__ = ["LetsExchangeSandboxConfig", "SandboxLetsExchange"]
