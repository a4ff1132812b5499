"""The admin site: Django's, plus TOTP two-factor (django-otp) for whoever can move money.

A staff user who holds any permission in PGP_MONEY_PERMISSIONS, or is a superuser, is let into
the admin only with a session verified by a TOTP token at login, when PGP_REQUIRE_OTP_FOR_MONEY is
on (production's default). Other staff log in with their password alone, unless they have
enrolled a device: an enrolled second factor is always asked for. Devices are enrolled with
`manage.py add_totp_device <username>` or in the admin's TOTP devices page.

Installed through pgp_project.admin_apps.PgpAdminConfig (its `default_site`), so `admin.site` is this site and every
`admin.site.register` / `@admin.register` elsewhere keeps working unchanged.
"""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest
from django_otp import devices_for_user, user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

NO_DEVICE_MESSAGE = (
    "Your permissions move money: they need two-factor authentication, and you have no TOTP device. "
    "Ask an administrator to enrol one (manage.py add_totp_device <username>)."
)


def otp_required_for(user: Any) -> bool:
    """Whether this user may enter the admin only with an OTP-verified session."""
    if not settings.PGP_REQUIRE_OTP_FOR_MONEY or not user.is_active:
        return False
    return bool(user.is_superuser or any(user.has_perm(name) for name in settings.PGP_MONEY_PERMISSIONS))


def admin_access_allowed(request: HttpRequest) -> bool:
    """The admin's own rule: an active staff user, OTP-verified where their permissions need it."""
    return admin.site.has_permission(request)


class TwoFactorAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """Username and password, then the TOTP token for those who need one or have a device."""

    def clean(self) -> dict[str, Any]:
        # The password and staff checks (and, through the authentication backend, django-axes).
        self.cleaned_data = AdminAuthenticationForm.clean(self)
        user = self.get_user()
        if user is None:
            return self.cleaned_data
        required = otp_required_for(user)
        if required and not user_has_device(user):
            raise forms.ValidationError(NO_DEVICE_MESSAGE, code="otp_device_missing")
        if required or user_has_device(user):
            self.clean_otp(user)
        return self.cleaned_data

    def _chosen_device(self, user: Any) -> Any:
        # With a single device there is nothing to choose: use it (django-otp no longer tries
        # every device in turn, which would count failures against the others).
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class PgpAdminSite(admin.AdminSite):
    site_header = "PGP payout backend"
    site_title = "PGP payouts"
    login_form = TwoFactorAdminAuthenticationForm
    # django-otp's login page: Django's, with the device choice and the token field.
    login_template = "otp/admin111/login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        user: Any = request.user
        return not otp_required_for(user) or user.is_verified()
