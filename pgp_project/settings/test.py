"""Test suite: real PostgreSQL and Redis on their standard local ports (overridable)."""

import os

from .base import *  # noqa: F403
from .base import env
from .brokers import transport_options

SECRET_KEY = "test-only-secret-key"
NOWPAYMENTS_IPN_SECRET = "test-ipn-secret"
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/pgp"),
}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
# Redis or RabbitMQ (the end-to-end flow tests run on both): that broker's options.
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(CELERY_BROKER_URL, visibility_timeout=3600)
# The stand-ins the tests run against: local and test settings only, never production.
INSTALLED_APPS = [*INSTALLED_APPS, "standins"]  # noqa: F405
# A second exchange provider, from the stand-ins: one adapter module and this one entry.
PGP_EXCHANGES = {
    **PGP_EXCHANGES,  # noqa: F405
    "fixed_price": {"adapter": "standins.fixed_price_exchange.FixedPriceExchange", "enabled": False},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# A queue private to this test run, so a stray worker elsewhere cannot take our tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default=f"pgp-test-{os.getpid()}")
