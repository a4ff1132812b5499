"""Local run and demo: safe defaults, no server needed (SQLite + kombu filesystem broker)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-only-insecure-key-never-used-in-production")
NOWPAYMENTS_IPN_SECRET = env.str("NOWPAYMENTS_IPN_SECRET", default="local-demo-ipn-secret")

# The stand-ins, the demo and the benchmarks: local and test settings only, never production.
INSTALLED_APPS = [*INSTALLED_APPS, "standins"]  # noqa: F405
# A second exchange provider, from the stand-ins (PGP_EXCHANGE_PROVIDER=fixed_price to use it).
PGP_EXCHANGE_PROVIDERS = {**PGP_EXCHANGE_PROVIDERS, "fixed_price": "standins.fixed_price_exchange.FixedPriceExchange"}  # noqa: F405

# The SQLite file and the filesystem broker's folders live here.
for _folder in ("", "broker/queue", "broker/control", "broker/processed"):
    (VAR_DIR / _folder).mkdir(parents=True, exist_ok=True)  # noqa: F405

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # The demo's web, worker, Beat and simulator all write: wait for the lock instead of failing,
    # take it at the start of each transaction (no upgrade deadlocks), and let readers run in WAL.
    DATABASES["default"].setdefault("OPTIONS", {}).update(  # noqa: F405
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
