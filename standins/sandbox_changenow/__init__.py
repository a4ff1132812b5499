"""A local stand-in for ChangeNOW API v2 that settles exchanges on the local anvil chain.

sandbox = SandboxChangeNow(SandboxConfig(rpc_url=..., usdt_address=..., treasury_private_key=..., api_key=...))
base_url = sandbox.start()  # background threads; port 0 picks a free port
...
sandbox.stop()

What it imitates comes from ChangeNOW's API v2 documentation
(https://documenter.getpostman.com/view/8180765/SVfTPnM8); each module names the section behind the behaviour it
implements (api.py: the endpoints; exchanges.py: the shapes; watcher.py: the statuses; jsonio.py:
numbers; server.py: the API key header).
"""

from standins.sandbox_changenow.server import SandboxChangeNow, SandboxConfig
from standins.sandbox_changenow.watcher import LifecycleTiming

__all__ = ["LifecycleTiming", "SandboxChangeNow", "SandboxConfig"]
