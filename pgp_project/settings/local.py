"""Local run and demo: safe defaults, no server needed (SQLite + kombu filesystem broker).

Chosen explicitly (`make demo` sets DJANGO_SETTINGS_MODULE); every entry point defaults to
production. There is no public default secret: the Django key and the IPN secret are random,
made once per var folder and shared by the demo's processes through it.
"""

import os
import secrets
import time
from pathlib import Path

from .base import *  # noqa: F403
from .base import VAR_DIR, env


def _generated_secret(name: str) -> str:
    """A random secret kept in VAR_DIR/secrets/<name> (mode 600); the first process to ask makes it."""
    path = Path(VAR_DIR) / "secrets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
    for _ in range(50):  # another process may have created it and not written it yet
        value = path.read_text().strip()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"{path} stays empty")


DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _generated_secret("django_secret_key")
NOWPAYMENTS_IPN_SECRET = env.str("NOWPAYMENTS_IPN_SECRET", default="") or _generated_secret("ipn_secret")

# The stand-ins, the demo and the benchmarks: local and test settings only, never production.
INSTALLED_APPS = [*INSTALLED_APPS, "standins"]  # noqa: F405
# A second exchange provider, from the stand-ins (PGP_EXCHANGE_PROVIDER=fixed_price to use it).
PGP_EXCHANGE_PROVIDERS = {**PGP_EXCHANGE_PROVIDERS, "fixed_price": "standins.fixed_price_exchange.FixedPriceExchange"}  # noqa: F405

# The SQLite file and the filesystem broker's folders live here.
for _folder in ("", "broker/queue", "broker/control", "broker/processed"):
    (VAR_DIR / _folder).mkdir(parents=True, exist_ok=True)

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # The demo's web, worker, Beat and simulator all write: wait for the lock instead of failing,
    # take it at the start of each transaction (no upgrade deadlocks), and let readers run in WAL.
    DATABASES["default"].setdefault("OPTIONS", {}).update(  # noqa: F405
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

# The local chain (anvil) has no block explorer: its hashes are shown, not linked.
PGP_BLOCK_EXPLORERS = env.json("PGP_BLOCK_EXPLORERS", default={})
