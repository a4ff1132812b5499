"""The admin login resists guessing (django-axes) and asks money holders for TOTP (django-otp)."""

import time
from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.utils.html import escape
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from payouts.models.payout_batch import PayoutBatch
from pgp_project.admin_site import NO_DEVICE_MESSAGE
from pgp_project.client_ip import client_ip_address

from ..factories import StaffUserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"


def log_in(http: HttpClient, username: str, password: str, **extra: str):
    return http.post(LOGIN, {"username": username, "password": password, **extra})


def staff(username: str, *, money: bool) -> User:
    user = StaffUserFactory.create(username=username, is_superuser=False)
    if money:
        # The dedicated money permissions come with the money-controls work; made here as they will be.
        permission, _ = Permission.objects.get_or_create(
            codename="approve_payout",
            content_type=ContentType.objects.get_for_model(PayoutBatch),
            defaults={"name": "Can approve payouts"},
        )
        user.user_permissions.add(permission)
    return User.objects.get(pk=user.pk)  # no cached permissions


def current_token(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_bad_passwords_lock_the_account_out_even_for_the_right_password(client: HttpClient, settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    staff("clerk", money=False)
    statuses = [log_in(client, "clerk", f"guess-{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429]  # the form again, twice; then the lockout
    locked = log_in(client, "clerk", "pw")
    assert locked.status_code == 429
    assert b"Account locked: too many failed login attempts" in locked.content
    assert "_auth_user_id" not in client.session
    # Per username and address: the same name from another address is not locked out.
    elsewhere = HttpClient(REMOTE_ADDR="203.0.113.9")
    assert log_in(elsewhere, "clerk", "pw").status_code == 302


def test_the_client_address_comes_from_forwarded_for_only_through_trusted_proxies(settings) -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    settings.PGP_TRUSTED_PROXY_COUNT = 0
    assert client_ip_address(request) == "127.0.0.1"  # no proxy configured: the header is the client's own
    settings.PGP_TRUSTED_PROXY_COUNT = 1
    assert client_ip_address(request) == "198.51.100.7"  # what our proxy saw; the spoofed part is ignored
    settings.PGP_TRUSTED_PROXY_COUNT = 3
    assert client_ip_address(request) == "127.0.0.1"  # did not come through all our proxies


def test_money_permissions_need_a_verified_totp_device(client: HttpClient, settings) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    staff("treasurer", money=True)

    # No device: the password alone does not let them in, and says why.
    refused = log_in(client, "treasurer", "pw")
    assert refused.status_code == 200
    assert escape(NO_DEVICE_MESSAGE).encode() in refused.content
    assert client.get("/admin/").status_code == 302
    # Even a session logged in some other way is not let into the admin unverified.
    client.force_login(User.objects.get(username="treasurer"))
    assert client.get("/admin/").status_code == 302

    out = StringIO()
    call_command("add_totp_device", "treasurer", stdout=out, stderr=StringIO())
    uri = out.getvalue().strip()
    assert uri.startswith("otpauth://totp/")
    assert parse_qs(urlparse(uri).query)["issuer"] == ["PGP payouts"]
    device = TOTPDevice.objects.get(user__username="treasurer")

    fresh = HttpClient()
    assert b"Please enter your OTP token" in log_in(fresh, "treasurer", "pw").content
    wrong = f"{(int(current_token(device)) + 1) % 10**6:06d}"
    assert b"Invalid token" in log_in(fresh, "treasurer", "pw", otp_token=wrong).content
    # django-otp then refuses any token for a second (doubling with each failure): guessing is slow.
    assert b"Verification temporarily disabled" in log_in(fresh, "treasurer", "pw", otp_token=wrong).content
    time.sleep(2.1)
    assert fresh.get("/admin/").status_code == 302
    response = log_in(fresh, "treasurer", "pw", otp_token=current_token(device))
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert fresh.get("/admin/").status_code == 200


def test_superusers_need_it_too_and_staff_without_money_permissions_do_not(client: HttpClient, settings) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    StaffUserFactory.create(username="root", is_superuser=True)
    staff("reader", money=False)
    assert escape(NO_DEVICE_MESSAGE).encode() in log_in(client, "root", "pw").content
    assert log_in(client, "reader", "pw").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_without_the_requirement_money_staff_log_in_with_the_password(client: HttpClient, settings) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = False
    staff("treasurer", money=True)
    assert log_in(client, "treasurer", "pw").status_code == 302
    assert client.get("/admin/").status_code == 200
