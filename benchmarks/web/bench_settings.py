"""Settings of the IPN load benchmark's gunicorn: production's, with persistent connections
(also on a checkout from before DJANGO_CONN_MAX_AGE existed) and the URLconf below, which adds
the bare endpoint. Lives only in the benchmark (benchmarks/web is put on PYTHONPATH by
benchmarks/ipn_load.py); the project never imports it."""

from pgp_project.settings.production import *  # noqa: F403
from pgp_project.settings.production import DATABASES

DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
ROOT_URLCONF = "bench_urls"
