"""Local run and demo: safe defaults, no server needed (SQLite + kombu filesystem broker)."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-only-insecure-key-never-used-in-production")
NOWPAYMENTS_IPN_SECRET = env.str("NOWPAYMENTS_IPN_SECRET", default="local-demo-ipn-secret")

# The SQLite file and the filesystem broker's folders live here.
for _folder in ("", "broker/queue", "broker/control", "broker/processed"):
    (VAR_DIR / _folder).mkdir(parents=True, exist_ok=True)  # noqa: F405
