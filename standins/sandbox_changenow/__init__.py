"""A local stand-in for ChangeNOW API v2 that settles exchanges on the local anvil chain.

sandbox = SandboxChangeNow(SandboxConfig(rpc_url=..., usdt_address=..., treasury_private_key=..., api_key=...))
base_url = sandbox.start()  # background threads; port 0 picks a free port
...
sandbox.stop()
"""

from standins.sandbox_changenow.server import SandboxChangeNow, SandboxConfig
from standins.sandbox_changenow.watcher import LifecycleTiming

__all__ = ["LifecycleTiming", "SandboxChangeNow", "SandboxConfig"]
