"""No page shows a secret after it is set: every admin page, walked as every fixture user (each
logged in through the real login form with a TOTP token, money permissions needing it as in
production), with several TOTP devices enrolled, shows no device's key in any form a person or
an authenticator app could use it (hex, base32, inside an otpauth:// URL, raw bytes, a QR code
image), nor a key of ours (hot wallet, exchange API, IPN, Django, health and metrics tokens).

The pages are read from the admin's own URL list, so a page added later is walked too (and one
this walk cannot fill in fails it). Only TOTP devices are installed of django-otp's device types.
"""

import secrets
from base64 import b32encode
from collections.abc import Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from axes.models import AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.test import Client as HttpClient
from django.urls import URLPattern, reverse
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, SolarSchedule
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.models import ReconciliationRun
from gateway_api.keys import create_api_key
from gateway_api.models import IdempotencyRecord
from payments.models import Client, PayoutAccumulation
from pgp_project.operations.models import OutsideServiceHealth
from pgp_project.operations.pending_changes import request_change
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.services import job_heartbeat
from pgp_project.operations.state_machine import record_created
from webhooks.services import create_endpoint, dispatch_events

from ..conftest import ipn_body, post_ipn
from ..factories import BatchConversionFactory, HostPaymentFactory, PayoutBatchFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
DEVICE_PERMISSIONS = ("view_totpdevice", "add_totpdevice", "change_totpdevice", "delete_totpdevice")
MONEY = ("payouts.approve_payout", "operations.confirm_change", "payments.resolve_held_payment")
# Pages never opened: logging out ends the walk's session (and is a POST).
NOT_WALKED = {"logout"}


def permissions(*names: str) -> list[Permission]:
    found = []
    for name in names:
        app_label, codename = name.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


def every_view_permission() -> list[Permission]:
    models = list(admin.site._registry)
    types = ContentType.objects.get_for_models(*models).values()
    return list(Permission.objects.filter(content_type__in=types, codename__startswith="view_"))


def make_user(username: str, *, superuser: bool = False, granted: Sequence[Permission] = ()) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    user.user_permissions.add(*granted)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def operators(db: None) -> dict[str, User]:
    """Staff of different permission sets; each has a confirmed TOTP device, the superuser a
    second one still being enrolled (unconfirmed)."""
    users = {
        "root": make_user("root", superuser=True),
        "device_viewer": make_user("device_viewer", granted=permissions("otp_totp.view_totpdevice", "auth.view_user")),
        "device_keeper": make_user(
            "device_keeper",
            granted=permissions(
                *(f"otp_totp.{name}" for name in DEVICE_PERMISSIONS), "auth.view_user", "auth.change_user"
            ),
        ),
        "clerk": make_user("clerk", granted=every_view_permission()),
        "approver": make_user("approver", granted=[*every_view_permission(), *permissions(*MONEY)]),
        "newcomer": make_user("newcomer"),
    }
    for user in users.values():
        TOTPDevice.objects.create(user=user, name=f"{user.username}'s phone", confirmed=True)
    TOTPDevice.objects.create(user=users["root"], name="new phone", confirmed=False)
    # A device of someone who is not staff at all is a secret too.
    TOTPDevice.objects.create(user=User.objects.create_user("merchant", password="pw"), name="phone", confirmed=True)
    return users


@pytest.fixture
def our_keys(settings, monkeypatch) -> list[str]:
    """Our own secrets, set to values no page could show by chance."""
    hot_wallet_key = "0x" + secrets.token_hex(32)
    monkeypatch.setenv("HOT_WALLET_PRIVATE_KEY", hot_wallet_key)
    changenow_key = secrets.token_hex(16)
    monkeypatch.setenv("CHANGENOW_API_KEY", changenow_key)
    settings.NOWPAYMENTS_IPN_SECRET = secrets.token_urlsafe(24)
    settings.SECRET_KEY = secrets.token_urlsafe(40)
    settings.PGP_HEALTH_TOKEN = secrets.token_urlsafe(24)
    settings.PGP_METRICS_TOKEN = secrets.token_urlsafe(24)
    return [
        hot_wallet_key,
        hot_wallet_key.removeprefix("0x"),
        changenow_key,
        settings.NOWPAYMENTS_IPN_SECRET,
        settings.SECRET_KEY,
        settings.PGP_HEALTH_TOKEN,
        settings.PGP_METRICS_TOKEN,
    ]


@pytest.fixture
def one_of_everything(
    threshold_client: Client, operators: dict[str, User], our_keys: list[str]
) -> dict[type, list[Model]]:
    """A row of every model the admin shows; returns the one whose pages are walked, per model."""
    http = HttpClient()
    post_ipn(http, ipn_body(payment_id=1))
    post_ipn(http, ipn_body(payment_id=2, outcome_currency="usdterc20", outcome_amount=20))
    conversion = BatchConversionFactory.create(host_payment=HostPaymentFactory(owner_kind="conversion"))
    PayoutAccumulation.objects.filter(payment__provider_payment_id=1).update(
        status="swapping", batch_conversion_id=conversion.pk
    )
    payout = PayoutBatchFactory.create(
        client=threshold_client,
        host_payment=HostPaymentFactory(
            owner_kind="payout", asset="usdt", amount=Decimal("19.4"), amount_base_units=19_400_000
        ),
    )
    record_created("payout", payout.pk, "created", reason="threshold reached")
    get_runtime_settings()
    with job_heartbeat("operations.recovery_sweep"):
        pass
    request_change(Client, threshold_client.pk, {"payout_threshold_usd": "60.00"}, user=operators["root"])
    now = timezone.now()
    ReconciliationRun.objects.create(
        range_start=now - timedelta(days=1), range_end=now, status="ok", triggered_by="beat"
    )
    # A provider's health, its last failure naming a call (never a key: the adapters' errors hold none).
    OutsideServiceHealth.objects.create(
        name="changenow", calls_unavailable=3, opened_at=now, last_failure="changenow GET /v2/exchange/range: 503"
    )
    ClockedSchedule.objects.create(clocked_time=now)
    CrontabSchedule.objects.create(minute="5")
    SolarSchedule.objects.create(event="sunrise", latitude=Decimal("52.5"), longitude=Decimal("13.4"))
    Group.objects.create(name="accountants").permissions.add(*every_view_permission())
    # A webhook endpoint (its signing secret is shown once, on creation, never on these pages)
    # and deliveries of the events above to it.
    endpoint = create_endpoint(url="https://hooks.example.com/in", event_types=["*"], created_by=operators["root"])
    our_keys.append(endpoint.secret)
    dispatch_events()
    # An API key (its secret is shown once, on creation) and an idempotent answer kept for it.
    api_key, api_secret = create_api_key(name="gateway-bot", kind="gateway", created_by=operators["root"])
    our_keys.append(api_secret)
    IdempotencyRecord.objects.create(
        api_key=api_key, key="walk-1", method="POST", path="/api/v1/clients/", body_sha256="0" * 64
    )
    http.post(LOGIN, {"username": "stranger", "password": "guess"})  # django-axes' attempt
    for log in (AccessLog, AccessFailureLog):
        log.objects.create(username="stranger", ip_address="127.0.0.1", user_agent="walk", path_info=LOGIN)
    chosen = {model: list(model._default_manager.order_by("pk")[:1]) for model in admin.site._registry}
    chosen[TOTPDevice] = list(TOTPDevice.objects.all())  # each device's pages, the walker's own and others'
    chosen[User] = [operators["approver"]]
    missing = sorted(model._meta.label for model, rows in chosen.items() if not rows)
    assert not missing, f"no row to walk the pages of: {missing}"
    return chosen


def device_of(username: str) -> TOTPDevice:
    return TOTPDevice.objects.get(user__username=username, confirmed=True)


def token(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def logged_in(username: str) -> HttpClient:
    http = HttpClient()
    response = http.post(LOGIN, {"username": username, "password": "pw", "otp_token": token(device_of(username))})
    assert response.status_code == 302, response.content.decode()[-2000:]
    return http


def device_secret_forms(device: TOTPDevice) -> list[str]:
    """The key as a page could show it: hex, base32 (what an authenticator app gets), inside an
    otpauth:// URL, and the first 16 characters of each (a shortened display)."""
    hex_key = device.key.lower()
    base32 = b32encode(device.bin_key).decode()
    forms = [hex_key, base32, base32.rstrip("="), quote(base32), hex_key[:16], base32[:16]]
    return [form.lower() for form in forms]


def fill(pattern: URLPattern, name: str, rows: list[Model]) -> Iterator[str]:
    """Every URL of a page of the admin: its object's, its app's, or the page itself."""
    params = set(pattern.pattern.regex.groupindex)
    if not params:
        yield reverse(f"admin:{name}")
    elif params == {"app_label"}:
        for app_label in sorted({model._meta.app_label for model in admin.site._registry}):
            yield reverse(f"admin:{name}", kwargs={"app_label": app_label})
    elif params == {"content_type_id", "object_id"}:
        for model in admin.site._registry:
            row = model._default_manager.order_by("pk")[0]
            content_type = ContentType.objects.get_for_model(model)
            yield reverse(f"admin:{name}", kwargs={"content_type_id": content_type.pk, "object_id": row.pk})
    elif len(params) == 1 and rows:
        (param,) = params
        for row in rows:
            yield reverse(f"admin:{name}", kwargs={param: row.pk})
    else:
        raise AssertionError(f"the walk cannot fill in admin:{name} ({pattern.pattern}): teach it")


def every_page(chosen: dict[type, list[Model]]) -> list[str]:
    urls = ["/health/", "/metrics"]  # the operators' machine pages, open to a staff session
    for pattern in admin.site.get_urls():
        if isinstance(pattern, URLPattern) and pattern.name and pattern.name not in NOT_WALKED:
            urls.extend(fill(pattern, pattern.name, []))
    for model, model_admin in admin.site._registry.items():
        for pattern in model_admin.get_urls():
            if pattern.name:  # the unnamed one only redirects an old change URL
                urls.extend(fill(pattern, pattern.name, chosen[model]))
    return urls


@pytest.mark.slow  # walks every admin page as several people: the second tier
def test_no_page_shows_a_totp_secret_or_a_key_of_ours_to_anyone(
    operators: dict[str, User], one_of_everything: dict[type, list[Model]], our_keys: list[str], settings
) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True  # as in production: money holders log in with TOTP
    devices = list(TOTPDevice.objects.all())
    assert len(devices) == len(operators) + 2
    text_secrets = {
        form: f"the TOTP key of {device.persistent_id}" for device in devices for form in device_secret_forms(device)
    }
    text_secrets |= {key.lower(): "a key of ours" for key in our_keys}
    urls = every_page(one_of_everything)
    leaks: list[str] = []
    opened: dict[str, int] = {}
    sessions = {username: logged_in(username) for username in operators}
    for username, http in sessions.items():
        opened[username] = 0
        for url in urls:
            response = http.get(url)
            opened[username] += response.status_code == 200
            content = b"".join(response) if response.streaming else response.content
            if response.get("Content-Type", "").startswith("image/"):
                leaks.append(f"{username} {url}: an image (a QR code carries the key)")
            for device in devices:
                if device.bin_key in content:
                    leaks.append(f"{username} {url}: the raw TOTP key of {device.persistent_id}")
            text = content.decode(errors="replace").lower()
            leaks.extend(f"{username} {url}: {what}" for secret, what in text_secrets.items() if secret in text)
    assert not leaks, "\n".join(sorted(set(leaks)))
    # The walk opened pages, and the change pages of the devices among them.
    assert opened["root"] >= 100, opened
    assert opened["newcomer"] >= 2, opened  # the index and the password change at least
    device_page = reverse("admin:otp_totp_totpdevice_change", args=[device_of("device_viewer").pk])
    assert device_page in urls
    for username in ("root", "device_viewer", "device_keeper"):
        assert sessions[username].get(device_page).status_code == 200


def test_a_device_s_qr_code_and_otpauth_url_are_served_to_nobody_after_enrolment(
    operators: dict[str, User], settings
) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    device = device_of("device_viewer")
    for username in ("root", "device_viewer", "device_keeper"):
        http = logged_in(username)
        for name in ("admin:otp_totp_totpdevice_config", "admin:otp_totp_totpdevice_qrcode"):
            assert http.get(reverse(name, kwargs={"pk": device.pk})).status_code == 403, (username, name)


def test_the_device_list_cannot_be_filtered_by_a_key(operators: dict[str, User], settings) -> None:
    """Filtering by the key would tell a viewer, one character at a time, whether a device's key
    starts with a guess: refused (400) like any lookup the admin does not offer (and, by Django's
    UserAdmin, any filter on a password hash)."""
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    device = device_of("root")
    http = logged_in("device_viewer")
    devices = reverse("admin:otp_totp_totpdevice_changelist")
    assert http.get(devices).status_code == 200
    for lookup in ("key", "key__startswith", "key__istartswith", "key__regex", "key__gt", "key__contains"):
        response = http.get(devices, {lookup: device.key[:1]})
        assert response.status_code == 400, (lookup, response.status_code)
    users = reverse("admin:auth_user_changelist")
    assert http.get(users, {"totpdevice__key__startswith": device.key[:1]}).status_code == 400
    assert http.get(users, {"password__startswith": "md5$"}).status_code == 400  # nor a password hash
