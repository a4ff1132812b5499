"""Production: every secret must come from the environment; refuses to start without them."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: ImproperlyConfigured when missing
NOWPAYMENTS_IPN_SECRET = env.str("NOWPAYMENTS_IPN_SECRET")
if not NOWPAYMENTS_IPN_SECRET:
    raise ImproperlyConfigured("NOWPAYMENTS_IPN_SECRET must not be empty")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
if not DATABASE_URL:  # noqa: F405
    raise ImproperlyConfigured("DATABASE_URL must name the PostgreSQL database")
# Staff holding a money permission need TOTP two-factor in the admin.
PGP_REQUIRE_OTP_FOR_MONEY = env.bool("PGP_REQUIRE_OTP_FOR_MONEY", default=True)

# The one forwarded header trusted as is: our proxy sets X-Forwarded-Proto (and must overwrite a
# client's). X-Forwarded-Host is not trusted (USE_X_FORWARDED_HOST stays off); the client address
# comes from X-Forwarded-For only as PGP_TRUSTED_PROXY_COUNT says (pgp_project/client_ip.py).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Load balancers probe /health/ over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Static files (the admin's) served by the app itself behind gunicorn.
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
