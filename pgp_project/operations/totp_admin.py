"""The TOTP devices' admin base: django-otp's, whose keys nobody reads back after enrolment
(`access_admin.AccessTOTPDeviceAdmin` adds who may manage whose device).

django-otp shows a device's key on its page and serves its otpauth:// URL and QR code unless
OTP_ADMIN_HIDE_SENSITIVE_DATA is on (it is, in the base settings): then the key is only on the
add page, as the new device's, and the URL and QR code pages answer 403 to everyone. What the
setting leaves open is the device list's filter: the admin allows a filter on any field of the
model in the query string, so `?key__startswith=a` would tell a viewer, one character at a time,
whether a device's key starts with a guess. SecretFieldsNotFilterable refuses that (400), as
Django's own UserAdmin refuses any filter on a password.
"""

from typing import ClassVar

from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin


class SecretFieldsNotFilterable:
    """For a ModelAdmin: no list filter from the query string touches a field in `secret_fields`
    (the admin answers such a filter with 400, as it does any lookup it does not offer)."""

    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if self.secret_fields.intersection(lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]


class SecretKeepingTOTPDeviceAdmin(SecretFieldsNotFilterable, TOTPDeviceAdmin):
    secret_fields = frozenset({"key"})
