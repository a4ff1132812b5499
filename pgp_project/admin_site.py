"""The admin site: Django's, plus TOTP two-factor (django-otp) for whoever can move money.

A staff user who holds any permission in PGP_MONEY_PERMISSIONS, or is a superuser, is let into
the admin only with a session verified by a TOTP token at login, when PGP_REQUIRE_OTP_FOR_MONEY is
on (production's default). Other staff log in with their password alone, unless they have
enrolled a device: an enrolled second factor is always asked for. Devices are enrolled with
`manage.py add_totp_device <username>` or in the admin's TOTP devices page.

Installed through pgp_project.admin_apps.PgpAdminConfig (its `default_site`), so `admin.site` is this site and every
`admin.site.register` / `@admin.register` elsewhere keeps working unchanged.
"""

import hmac
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.views.decorators.debug import sensitive_variables
from django_otp import devices_for_user, user_has_device
from django_otp.admin import OTPAdminAuthenticationForm

from .operations.attention import attention_counts

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


@sensitive_variables("token", "offered")
def operator_access_allowed(request: HttpRequest, token: str) -> bool:
    """For operators' machine endpoints (/health/'s details, /metrics): `Authorization: Bearer
    <token>`, compared in constant time (an empty token grants nothing), or a session the admin
    itself would let in."""
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
        return True
    return admin_access_allowed(request)


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

    # Pages added by the apps above the kernel (the operator console), from their `ready()`:
    # the kernel knows none of them. Each is behind `admin_view` (staff, OTP where needed).
    ATTENTION_QUEUE = "attention_queue"  # the URL name of the needs-attention queue, once added

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self._pages: list[tuple[str, Callable[..., HttpResponse], str]] = []
        self._index_context: Callable[[HttpRequest], dict[str, Any]] | None = None

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        user: Any = request.user
        return not otp_required_for(user) or user.is_verified()

    def add_page(self, route: str, view: Callable[..., HttpResponse], name: str) -> None:
        """A page of the admin at `route` (below /admin/), named `admin:<name>`."""
        if all(existing != name for _, _, existing in self._pages):
            self._pages.append((route, view, name))

    def set_index(self, template: str, context: Callable[[HttpRequest], dict[str, Any]]) -> None:
        """The admin's home page: `template` (extending admin/index.html) with `context(request)`."""
        self.index_template = template
        self._index_context = context

    def get_urls(self) -> list[URLPattern | Any]:
        pages = [path(route, self.admin_view(view), name=name) for route, view, name in self._pages]
        return [*pages, *super().get_urls()]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if self._index_context is not None:
            extra_context = {**self._index_context(request), **(extra_context or {})}
        return super().index(request, extra_context)

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        """Every admin page's header shows how many things need a person, linked to the queue
        (COUNT queries only: the list itself is on the queue's page)."""
        context = super().each_context(request)
        if self.has_permission(request):
            try:
                context["attention_url"] = reverse(f"{self.name}:{self.ATTENTION_QUEUE}")
            except NoReverseMatch:  # no console installed: no queue to link to
                context["attention_url"] = None
            # The header's "View site" leads to what needs a person (this site has no public site).
            context["site_url"] = context["attention_url"] or context["site_url"]
            context["attention_total"] = sum(attention_counts().values())
        return context
