"""Settings shared by every environment; everything that differs comes from the environment.

The database is PostgreSQL, named by `DATABASE_URL`. Local runs (`pgp_project.settings.local`)
default to the demo's own PostgreSQL server and a kombu filesystem broker, so the demo needs no
installed server; `DATABASE_URL` / `CELERY_BROKER_URL` switch to others unchanged.
"""

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from .brokers import RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_SECONDS, check_redelivery_window, transport_options
from .ipn_budget import check_ipn_answer_budget

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Runtime data of a local run (the demo's PostgreSQL server, filesystem broker folders); ignored by git.
VAR_DIR = Path(environ.Env().str("PGP_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # The admin with its site replaced by ours (two-factor for money permissions): every
    # `admin.site.register` elsewhere registers on it.
    "pgp_project.admin_apps.PgpAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgp_project.operations",
    "pgp_project.outbox",
    "payments",
    "batching",
    "payouts",
    "evm_chain",
    "console",
    "webhooks",
    "gateway_api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed a TOTP token at login.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into the lockout response.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out username+address before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "pgp_project.urls"
WSGI_APPLICATION = "pgp_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The kernel's overrides of the admin's own templates (the header): before the apps'.
        "DIRS": [BASE_DIR / "pgp_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_settings(url: str) -> dict[str, Any]:
    """The default database named by `url`, with our connection policy. PostgreSQL only:
    the money rules are written in its SQL (advisory locks, data-modifying CTEs, COPY, arrays)."""
    config: dict[str, Any] = dict(environ.Env.db_url_config(url))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_URL must name a PostgreSQL database (its engine is {config['ENGINE']})")
    config["ATOMIC_REQUESTS"] = False
    # Persistent connections: a web thread or a Celery worker process keeps its connection for this
    # many seconds (0: a new one per request or task, which cost more than an IPN's whole work; None:
    # forever), checked before reuse after an error or an idle spell (CONN_HEALTH_CHECKS). One
    # connection per gunicorn thread and per Celery worker process: see "Database connections" in
    # docs/deployment.md for the budget. No in-process pool (psycopg 3's pool would replace psycopg2 and
    # CONN_MAX_AGE, and give nothing here: every thread uses the database on every request, so a
    # pool smaller than the threads would only queue them). Past max_connections, put pgbouncer in
    # front; the IPN intake sets lock_timeout once per session, so with transaction pooling set it
    # on the database role instead (ALTER ROLE ... SET lock_timeout), and turn PGP_PREPARED_STATEMENTS
    # off.
    config["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    return config


# Production requires DATABASE_URL (settings/production.py); local settings default to the demo's
# own server (settings/local.py), test settings to a local one (settings/test.py).
DATABASE_URL = env.str("DATABASE_URL", default="")
DATABASES = {"default": database_settings(DATABASE_URL)} if DATABASE_URL else {}
# Set by local settings when the demo runs its own PostgreSQL server: its data and socket folder.
PGP_EMBEDDED_POSTGRES_DIR: Path | None = None
# The IPN's hottest statements are prepared once per database session
# (pgp_project/prepared_statements.py); off: sent as plain SQL every time, as a transaction-pooling
# pgbouncer needs (it does not keep a server session per client).
PGP_PREPARED_STATEMENTS = env.bool("PGP_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Times to the second with their timezone on every admin page (pgp_project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["pgp_project.formats"]
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Kept libraries served as our own static files (CSP: scripts only from 'self'), from the npm
# packages package-lock.json pins (`npm ci`): Chart.js draws the console's charts.
STATICFILES_DIRS = [("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist")]

# --- The admin login: throttling (django-axes) and two-factor (django-otp) ----------------
# A username is locked out from one client address after this many failed logins, for the
# cool-off below (a successful login before that resets the count). Per username *and* address,
# so nobody can lock an operator out from everywhere by typing their name.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_COOLOFF_MESSAGE = (
    "Account locked: too many failed login attempts from this address. Try again later, or ask an "
    "administrator to unlock it (manage.py axes_reset_username <username>)."
)
# The client address axes counts by: REMOTE_ADDR, or with PGP_TRUSTED_PROXY_COUNT > 0 the address
# our own proxies put in X-Forwarded-For (see pgp_project/client_ip.py).
AXES_CLIENT_IP_CALLABLE = "pgp_project.client_ip.client_ip_address"
PGP_TRUSTED_PROXY_COUNT = env.int("PGP_TRUSTED_PROXY_COUNT", default=0)
# Staff who hold a permission in PGP_MONEY_PERMISSIONS (or are superusers) get into the admin
# only with a TOTP-verified session. On in production; off by default for the demo and tests.
PGP_REQUIRE_OTP_FOR_MONEY = env.bool("PGP_REQUIRE_OTP_FOR_MONEY", default=False)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="PGP payouts")
# A device's key is shown once, on the page that enrols it, and never again: not on its page, nor
# as its otpauth:// URL or QR code (django-otp then answers those two pages 403 for everyone;
# `manage.py add_totp_device` prints the URL once instead). Whoever could read a key could pass
# that operator's second factor. Not configurable: no environment needs the keys shown.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Content-Security-Policy (django-csp) --------------------------------------------------
# The Django admin loads only its own scripts and styles (no inline script or style, no eval),
# so everything comes from 'self'; nothing may frame us or receive our forms.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# --- The cache: shared by every web worker (the API's rate limits count per key across all) ----
# A Redis URL (redis://host:6379/2) in production; unset, each process has its own in-memory
# cache, which suits the tests and a single-process run only.
PGP_CACHE_URL = env.str("PGP_CACHE_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": PGP_CACHE_URL}
        if PGP_CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- The gateway's REST API (/api/v1/, gateway_api) ------------------------------------------
# Requests per API key; past it, 429 with Retry-After. Counted in the cache above.
PGP_API_RATE = env.str("PGP_API_RATE", default="600/min")
# An Idempotency-Key's stored answer is replayed for this long, then pruned by a periodic job.
PGP_API_IDEMPOTENCY_HOURS = env.int("PGP_API_IDEMPOTENCY_HOURS", default=24)
PGP_API_IDEMPOTENCY_PRUNE_SECONDS = env.int("PGP_API_IDEMPOTENCY_PRUNE_SECONDS", default=60 * 60)
# A key's last-used time is written at most this often (not on every request: reads stay reads).
PGP_API_KEY_LAST_USED_RESOLUTION_SECONDS = env.int("PGP_API_KEY_LAST_USED_RESOLUTION_SECONDS", default=60)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway_api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["gateway_api.permissions.HasValidApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["gateway_api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Money as exact decimal strings, never floats.
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "gateway_api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PGP payout backend API",
    "DESCRIPTION": "The gateway's API: clients, balances, payments, payouts, statements and webhook endpoints. "
    "Authenticate with `Authorization: Api-Key <key>`; see docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's scripts and styles are our own static files (CSP: 'self' only).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "deepLinking": True},
}

# --- /health/ -------------------------------------------------------------------------------
# The public sees only up or down; the details need a staff session or this bearer token
# (empty: no token access).
PGP_HEALTH_TOKEN = env.str("PGP_HEALTH_TOKEN", default="")
# All checks together answer within this budget; a check that has not finished counts as failed.
PGP_HEALTH_CHECK_TIMEOUT_SECONDS = env.float("PGP_HEALTH_CHECK_TIMEOUT_SECONDS", default=3.0)

# --- the console: reconciliation and metrics ------------------------------------------------
# A reconciliation scans at most this many blocks of the chain (a longer range is reported as a
# discrepancy, never silently cut): block scanning suits the local chain and short ranges.
PGP_RECONCILE_MAX_BLOCKS = env.int("PGP_RECONCILE_MAX_BLOCKS", default=20_000)
# The daily reconciliation job (of the previous day) runs this often.
PGP_RECONCILE_EVERY_SECONDS = env.int("PGP_RECONCILE_EVERY_SECONDS", default=24 * 60 * 60)
# /metrics (Prometheus): a staff session or `Authorization: Bearer` this token (empty: staff only).
PGP_METRICS_TOKEN = env.str("PGP_METRICS_TOKEN", default="")

# --- NOWPayments intake -------------------------------------------------------------------
NOWPAYMENTS_IPN_SECRET = env.str("NOWPAYMENTS_IPN_SECRET", default="")
# A real IPN is well under 4 KiB; anything far larger is refused before it is parsed.
IPN_MAX_BODY_BYTES = env.int("IPN_MAX_BODY_BYTES", default=64 * 1024)
# Refused IPNs (hash, size, reason, time) are kept this long, for spotting an attack, then pruned.
PGP_REJECTED_IPN_RETENTION_DAYS = env.int("PGP_REJECTED_IPN_RETENTION_DAYS", default=30)
PGP_PRUNE_REJECTED_IPNS_SECONDS = env.int("PGP_PRUNE_REJECTED_IPNS_SECONDS", default=24 * 60 * 60)
# The whole body of a refused IPN whose signature matches no documented form but whose size and
# shape look genuine is kept this long, so that it can be replayed if NOWPayments signed it in a
# way we do not yet reproduce; at most so many a day and in all, each at most so large (anyone can
# send one: these bounds keep them from filling the database).
PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS = env.int("PGP_UNVERIFIED_IPN_BODY_RETENTION_DAYS", default=7)
PGP_UNVERIFIED_IPN_BODIES_PER_DAY = env.int("PGP_UNVERIFIED_IPN_BODIES_PER_DAY", default=100)
PGP_UNVERIFIED_IPN_BODIES_MAX = env.int("PGP_UNVERIFIED_IPN_BODIES_MAX", default=500)
PGP_UNVERIFIED_IPN_BODY_MAX_BYTES = env.int("PGP_UNVERIFIED_IPN_BODY_MAX_BYTES", default=16 * 1024)
# An IPN's outcome is checked against its invoice at the exchange provider's price of ETH (refreshed
# every PGP_REFERENCE_PRICE_SECONDS, trusted for PGP_REFERENCE_PRICE_MAX_AGE_SECONDS): a payment
# worth more or less than its invoice beyond this tolerance is held for review.
PGP_PRICE_TOLERANCE_PERCENT = env.int("PGP_PRICE_TOLERANCE_PERCENT", default=10)
PGP_REFERENCE_PRICE_SECONDS = env.int("PGP_REFERENCE_PRICE_SECONDS", default=5 * 60)
PGP_REFERENCE_PRICE_MAX_AGE_SECONDS = env.int("PGP_REFERENCE_PRICE_MAX_AGE_SECONDS", default=15 * 60)
# NOWPayments wants an IPN answered within 3,000 ms (settings/ipn_budget.py). How long the intake
# may wait for one row lock before answering 503 (the sender retries), and the whole IPN's budget,
# lock waits included, after which its running statement is cancelled and it is answered 503
# (payments/ipn_deadline.py). Both are checked below: each must stay under 3,000 ms.
IPN_LOCK_TIMEOUT_MS = env.int("IPN_LOCK_TIMEOUT_MS", default=1500)
IPN_ANSWER_BUDGET_MS = env.int("IPN_ANSWER_BUDGET_MS", default=2500)
check_ipn_answer_budget(IPN_LOCK_TIMEOUT_MS, IPN_ANSWER_BUDGET_MS)

# --- External systems (used from the conversion issue on) ---------------------------------

# The chains the hot wallet holds funds on, by name: each entry names its adapter class and that
# chain's configuration. Secrets are never values here: a key ending in `_env` names the
# environment variable that holds the value (read at each use, so a rotated key or node URL
# needs no restart; a URL can carry an API key), and `<NAME>_FILE` may point at a mounted file
# instead. JSON in the environment (PGP_CHAINS) replaces the whole map; the default is one
# chain, "eth", configured from the variables that have always configured it.
PGP_CHAINS = env.json(
    "PGP_CHAINS",
    default={
        "eth": {
            "adapter": "evm_chain.adapter.EvmChain",
            "rpc_url_env": "ETH_RPC_URL",
            "rpc_url_default": "http://127.0.0.1:8545",
            "chain_id": env.int("ETH_CHAIN_ID", default=31337),
            "native_asset": "eth",
            # Blocks on top of a payment's before it counts as confirmed.
            "confirmations": env.int("ETH_CONFIRMATIONS", default=3),
            # The fee cap (maxFeePerGas): above it, payments wait rather than overpay.
            "max_fee_gwei": env.int("ETH_MAX_FEE_GWEI", default=200),
            "keyring": {
                "current_env": "HOT_WALLET_PRIVATE_KEY",
                # Keys rotated away, kept only to sign for payments still in flight from them.
                "previous_env": "HOT_WALLET_PREVIOUS_PRIVATE_KEYS",
            },
            # The token contracts the hot wallet sends, by asset symbol.
            "tokens": {"usdt": {"contract_env": "USDT_CONTRACT_ADDRESS"}},
        }
    },
)

# The exchange providers, configured like the chains: each names its adapter class, where it is
# reached, the environment variable holding its API key (`api_key_env`; `<that name>_FILE` may
# name a mounted file instead, read at every call so a rotated key needs no restart) and whether
# routing may choose it. Each batch quotes every enabled provider that trades its pair and goes
# through the best net amount (integrations/exchange/routing.py); a batch stores the name it used.
# A pair with the same asset on both sides needs no provider: it is a direct transfer.
PGP_EXCHANGES = {
    "changenow": {
        "adapter": "integrations.exchange.changenow.ChangeNowExchange",
        "url": env.str("CHANGENOW_API_URL", default="https://api.changenow.io"),
        "api_key_env": "CHANGENOW_API_KEY",
        # Sent as contactEmail with each exchange we create: where its support writes about it.
        "contact_email": env.str("CHANGENOW_CONTACT_EMAIL", default=""),
        "enabled": env.bool("CHANGENOW_ENABLED", default=True),
    },
    # LetsExchange API v1 (integrations/exchange/letsexchange.py): off until an operator has a
    # partner key and enables it. Its URL is the API's base, to which each call adds /v1/...
    "letsexchange": {
        "adapter": "integrations.exchange.letsexchange.LetsExchangeExchange",
        "url": env.str("LETSEXCHANGE_API_URL", default="https://api.letsexchange.io/api"),
        "api_key_env": "LETSEXCHANGE_API_KEY",
        # Sent with each quote and exchange (its reference marks it required): the partner account
        # credited; not a secret.
        "affiliate_id": env.str("LETSEXCHANGE_AFFILIATE_ID", default=""),
        # Sent as email with each exchange we create: where its support writes about it.
        "contact_email": env.str("LETSEXCHANGE_CONTACT_EMAIL", default=""),
        "enabled": env.bool("LETSEXCHANGE_ENABLED", default=False),
    },
}
# A provider whose calls fail (down, timing out, rate-limiting, answering nonsense) this many times
# in a row is skipped by routing for the cool-down, then tried again with one probe call.
PGP_EXCHANGE_BREAKER_FAILURES = env.int("PGP_EXCHANGE_BREAKER_FAILURES", default=3)
PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS = env.float("PGP_EXCHANGE_BREAKER_COOLDOWN_SECONDS", default=60.0)

# --- Flow pacing and deadlines (seconds) ---------------------------------------------------
# How often an in-flight batch or host payment is looked at again while it waits on the chain
# or on ChangeNOW, and how long a batch may stay open before it goes to review with an alert.
PGP_CHAIN_POLL_SECONDS = env.float("PGP_CHAIN_POLL_SECONDS", default=15.0)
PGP_EXCHANGE_POLL_SECONDS = env.float("PGP_EXCHANGE_POLL_SECONDS", default=30.0)
PGP_RETRY_MAX_COUNTDOWN_SECONDS = env.float("PGP_RETRY_MAX_COUNTDOWN_SECONDS", default=300.0)
# A broadcast host payment not mined after this long is replaced (same sending slot, higher fees).
PGP_REPLACE_STUCK_AFTER_SECONDS = env.float("PGP_REPLACE_STUCK_AFTER_SECONDS", default=600.0)
# A host payment the hot wallet cannot cover yet is looked at again after this long.
PGP_BALANCE_RETRY_SECONDS = env.float("PGP_BALANCE_RETRY_SECONDS", default=60.0)
PGP_BATCH_DEADLINE_SECONDS = env.int("PGP_BATCH_DEADLINE_SECONDS", default=6 * 60 * 60)
# A conversion's distribution streams its rows this many at a time (bounded memory at any size).
PGP_DISTRIBUTION_CHUNK_ROWS = env.int("PGP_DISTRIBUTION_CHUNK_ROWS", default=10_000)
# The distribution's transaction sets PostgreSQL's work_mem to this (SET LOCAL): its UPDATE's hash
# join stays in one batch up to about a million rows (2x this with the default hash_mem_multiplier),
# so the rows are written in table order; a join spilled in batches writes them in an order that
# makes every index insertion a random page once the table outgrows shared_buffers.
PGP_DISTRIBUTION_WORK_MEM = env.str("PGP_DISTRIBUTION_WORK_MEM", default="128MB")
# A host payment not confirmed this long after it was created is alerted (and needs attention).
PGP_HOST_PAYMENT_DEADLINE_SECONDS = env.int("PGP_HOST_PAYMENT_DEADLINE_SECONDS", default=2 * 60 * 60)
# A fixed-rate exchange is funded only if its rate stays valid this much longer; else a fresh one.
PGP_RATE_VALIDITY_MARGIN_SECONDS = env.int("PGP_RATE_VALIDITY_MARGIN_SECONDS", default=120)
# How long a worker waits for a row lock on a batch, a host payment or a wallet before its task
# retries (PostgreSQL lock_timeout).
PGP_LOCK_TIMEOUT_MS = env.int("PGP_LOCK_TIMEOUT_MS", default=10_000)
# A condition that lasts (a host payment waiting for balance, say) is alerted again this often.
PGP_ALERT_REPEAT_SECONDS = env.int("PGP_ALERT_REPEAT_SECONDS", default=30 * 60)
# The recovery sweep re-drives anything whose next step is this late.
PGP_OVERDUE_GRACE_SECONDS = env.int("PGP_OVERDUE_GRACE_SECONDS", default=60)
# An open batch whose next step is this late has stopped moving: it goes to the operators' queue.
PGP_STALE_AFTER_SECONDS = env.int("PGP_STALE_AFTER_SECONDS", default=15 * 60)
# How long an item of the needs-attention queue may wait for a person before it is overdue: /metrics
# exports it per reason beside the oldest item's age, for the alerting rule
# (deploy/prometheus/alerts.yml). PGP_ATTENTION_DEADLINES overrides it per reason (the queue's
# kinds), as JSON: {"payout_awaiting_approval": 3600, "payment_held": 14400}.
PGP_ATTENTION_DEADLINE_SECONDS = env.int("PGP_ATTENTION_DEADLINE_SECONDS", default=4 * 3600)
PGP_ATTENTION_DEADLINES: dict[str, int] = env.json("PGP_ATTENTION_DEADLINES", default={})
# How often the batches' and host payments' changes by status are folded into their totals
# (pgp_project/operations/status_counts.py); /metrics is exact between folds, only a little slower.
PGP_FOLD_STATUS_COUNTS_SECONDS = env.int("PGP_FOLD_STATUS_COUNTS_SECONDS", default=60)

# --- Celery (reliability rules 1, 5, 6 of DESIGN.md) --------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# A task held by a worker (waiting for its countdown, then running: acks_late) must not be taken
# back by the broker: Redis's visibility timeout, and RabbitMQ's consumer_timeout (a server
# setting, 30 min by default: state it here if the server's differs), must both exceed the hard
# time limit plus the longest countdown we schedule. Checked below; see settings/brokers.py.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600)
PGP_BROKER_CONSUMER_TIMEOUT_SECONDS = env.int(
    "PGP_BROKER_CONSUMER_TIMEOUT_SECONDS", default=RABBITMQ_DEFAULT_CONSUMER_TIMEOUT_SECONDS
)
CELERY_BROKER_TRANSPORT_OPTIONS = transport_options(
    CELERY_BROKER_URL, visibility_timeout=CELERY_BROKER_VISIBILITY_TIMEOUT
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(_broker_dir / "queue"),
            "data_folder_out": str(_broker_dir / "queue"),
            "control_folder": str(_broker_dir / "control"),
            "processed_folder": str(_broker_dir / "processed"),
            "store_processed": False,
        }
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
# A broker that is down costs a web request a second or so, not the default several: the
# enqueue is abandoned (and logged) and the recovery sweep re-drives the object.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# The longest a worker holds a task before running it: every countdown that schedule_step and
# the retries use.
PGP_LONGEST_COUNTDOWN_SECONDS = max(
    PGP_RETRY_MAX_COUNTDOWN_SECONDS,
    PGP_BALANCE_RETRY_SECONDS,
    PGP_CHAIN_POLL_SECONDS * 2,
    PGP_EXCHANGE_POLL_SECONDS,
)
check_redelivery_window(
    CELERY_BROKER_URL,
    longest_countdown=PGP_LONGEST_COUNTDOWN_SECONDS,
    soft_time_limit=CELERY_TASK_SOFT_TIME_LIMIT,
    hard_time_limit=CELERY_TASK_TIME_LIMIT,
    visibility_timeout=CELERY_BROKER_VISIBILITY_TIMEOUT,
    consumer_timeout=PGP_BROKER_CONSUMER_TIMEOUT_SECONDS,
)

# Default periodic schedule (seconds). Written once into django-celery-beat's tables, after
# which operators own it in the admin; see pgp_project/operations/beat_schedule.py.
PGP_CONVERSION_CHECK_SECONDS = env.int("PGP_CONVERSION_CHECK_SECONDS", default=15 * 60)
PGP_CLIENT_PAYOUT_CHECK_SECONDS = env.int("PGP_CLIENT_PAYOUT_CHECK_SECONDS", default=5 * 60)
PGP_RECOVERY_SWEEP_SECONDS = env.int("PGP_RECOVERY_SWEEP_SECONDS", default=60)
# The overview's hot-wallet balances and fee rates: read by a periodic job this often (never by a
# page), with this timeout per node call; older than the last setting, the page says they are stale.
PGP_HOT_WALLET_REFRESH_SECONDS = env.int("PGP_HOT_WALLET_REFRESH_SECONDS", default=60)
PGP_CONSOLE_NODE_TIMEOUT_SECONDS = env.float("PGP_CONSOLE_NODE_TIMEOUT_SECONDS", default=5.0)
PGP_HOT_WALLET_STALE_AFTER_SECONDS = env.int("PGP_HOT_WALLET_STALE_AFTER_SECONDS", default=10 * 60)
# --- Webhooks (webhooks/, docs/webhooks.md) ---------------------------------------------------
# The sweep that turns outbox events into deliveries and sends those due (each commit also
# enqueues its events at once: the sweep is the safety net and the retry clock).
PGP_WEBHOOK_SWEEP_SECONDS = env.int("PGP_WEBHOOK_SWEEP_SECONDS", default=10)
PGP_WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("PGP_WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=3.0)
PGP_WEBHOOK_READ_TIMEOUT_SECONDS = env.float("PGP_WEBHOOK_READ_TIMEOUT_SECONDS", default=5.0)
PGP_WEBHOOK_MAX_RESPONSE_BYTES = env.int("PGP_WEBHOOK_MAX_RESPONSE_BYTES", default=4096)
# A claimed attempt not finished by then (its worker died) is claimed again: above both timeouts.
PGP_WEBHOOK_LEASE_SECONDS = env.int("PGP_WEBHOOK_LEASE_SECONDS", default=30)
# Retries: the first after about BASE seconds, doubling with jitter up to MAX, for RETRY_FOR.
PGP_WEBHOOK_RETRY_BASE_SECONDS = env.float("PGP_WEBHOOK_RETRY_BASE_SECONDS", default=5.0)
PGP_WEBHOOK_RETRY_MAX_DELAY_SECONDS = env.float("PGP_WEBHOOK_RETRY_MAX_DELAY_SECONDS", default=6 * 3600)
PGP_WEBHOOK_RETRY_FOR_SECONDS = env.int("PGP_WEBHOOK_RETRY_FOR_SECONDS", default=3 * 24 * 3600)
# An endpoint whose every attempt failed for this long, and this many in a row, is disabled.
PGP_WEBHOOK_DISABLE_AFTER_SECONDS = env.int("PGP_WEBHOOK_DISABLE_AFTER_SECONDS", default=3 * 24 * 3600)
PGP_WEBHOOK_DISABLE_AFTER_FAILURES = env.int("PGP_WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
# Delivered and given-up deliveries (with their attempts), and the events they delivered, are
# kept this long; a subject's latest event always stays (its sequence continues from it).
PGP_WEBHOOK_RETENTION_DAYS = env.int("PGP_WEBHOOK_RETENTION_DAYS", default=30)
# Private, loopback and link-local destinations are refused unless this is on (demo, tests).
PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS = env.bool("PGP_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS", default=False)

# /health/ reports Beat as stale when no periodic job has run for this long.
PGP_BEAT_STALE_AFTER_SECONDS = env.int("PGP_BEAT_STALE_AFTER_SECONDS", default=180)

# The permissions that move or redirect money. Each is dedicated (never a model's generic change
# permission); holding any of them requires TOTP two-factor where PGP_REQUIRE_OTP_FOR_MONEY is on.
PGP_MONEY_PERMISSIONS = [
    "payouts.approve_payout",  # approve or reject a payout above the approval limit
    "payouts.operate_batch",  # re-drive, cancel, resume, release rows of conversions and payouts
    "payments.resolve_held_payment",  # route a held payment again, accept a partial payment
    "payments.change_payout_destination",  # request a client's wallet, network or currency change
    "payments.change_fees_and_thresholds",  # request a client's fee or threshold change
    "operations.change_runtime_limits",  # request a runtime limit change (approval limit, ...)
    "operations.change_money_jobs",  # request disabling or re-timing a money job (reconciliation, ...)
    "operations.confirm_change",  # confirm another person's requested change
]
# Administering people is a money control too: whoever changes accounts, groups, permissions or
# second factors could otherwise hand themselves (or a second account of theirs) every money
# permission. Granting stays bounded by what the granter holds (pgp_project/operations/access_control.py).
PGP_PEOPLE_ADMINISTRATION_PERMISSIONS = [
    f"{app}.{verb}_{model}"
    for app, model in [
        ("auth", "user"),
        ("auth", "group"),
        ("auth", "permission"),
        ("otp_totp", "totpdevice"),
        *([("otp_static", "staticdevice")] if "django_otp.plugins.otp_static" in INSTALLED_APPS else []),
    ]
    for verb in ("add", "change", "delete")
]
PGP_MONEY_PERMISSIONS += PGP_PEOPLE_ADMINISTRATION_PERMISSIONS
# An API key is an account of its own: whoever mints or edits one holds what its scopes allow
# (requesting money-control changes), so doing it needs a TOTP session, and granting it is guarded.
PGP_API_KEY_PERMISSIONS = [f"gateway_api.{verb}_apikey" for verb in ("add", "change", "delete")]
PGP_MONEY_PERMISSIONS += PGP_API_KEY_PERMISSIONS

# Block explorer pages per chain (ChangeNOW network code) and kind, `{}` replaced by the hash or
# address: the console links every transaction and address there. JSON in the environment.
PGP_BLOCK_EXPLORERS = env.json(
    "PGP_BLOCK_EXPLORERS",
    default={
        "eth": {"tx": "https://etherscan.io/tx/{}", "address": "https://etherscan.io/address/{}"},
        "trx": {"tx": "https://tronscan.org/#/transaction/{}", "address": "https://tronscan.org/#/address/{}"},
        "bsc": {"tx": "https://bscscan.com/tx/{}", "address": "https://bscscan.com/address/{}"},
    },
)

DEFAULT_EXCEPTION_REPORTER_FILTER = "pgp_project.error_reports.SecretHidingReporterFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
