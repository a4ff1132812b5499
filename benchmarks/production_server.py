"""gunicorn with production settings on a loopback port, for the benchmarks that time the web
tier as it is deployed (gunicorn.conf.py, persistent connections, the Redis cache)."""

import os
import secrets
import tempfile

from ipn_load import free_port, loadavg, start_gunicorn

__all__ = ["free_port", "loadavg", "production_env", "start_gunicorn"]


def production_env(
    *, database_url: str, cache_url: str, port: int, workers: int, threads: int, **extra: str
) -> dict[str, str]:
    """The environment of `pgp_project.settings.production` serving 127.0.0.1:`port` over plain
    HTTP, with throwaway secrets; `extra` adds or overrides variables."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pgp_project.settings.production",
        "DATABASE_URL": database_url,
        "PGP_CACHE_URL": cache_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "NOWPAYMENTS_IPN_SECRET": secrets.token_urlsafe(24),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "DJANGO_STATIC_ROOT": tempfile.mkdtemp(prefix="pgp-bench-static-"),  # empty: nothing for whitenoise to scan
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_THREADS": str(threads),
        "LOG_LEVEL": "ERROR",
        **extra,
    }
