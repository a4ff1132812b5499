"""Enrol a TOTP device for a staff user and print its otpauth:// URI (for the authenticator app).

The URI carries the shared secret: show it to its owner only (scan it, then clear the screen).
Server access is the one way to enrol a device for oneself; the enrolment is in the account's
history, as the system's (no admin user acts).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from pgp_project.operations.access_control import record_device_event


class Command(BaseCommand):
    help = "Enrol a TOTP two-factor device for a user and print its otpauth:// URI."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="a name for the device (default: authenticator)")

    def handle(self, *args: object, **options: Any) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["username"]})
        except user_model.DoesNotExist as exc:
            raise CommandError(f"no user {options['username']!r}") from exc
        if not user.is_staff:
            raise CommandError(f"{options['username']!r} is not staff: the admin is the only place it logs in")
        if TOTPDevice.objects.filter(user=user, name=options["name"]).exists():
            raise CommandError(f"{options['username']!r} already has a device named {options['name']!r}; use --name")
        with transaction.atomic():  # enrolled and in the owner's history, or neither
            device = TOTPDevice.objects.create(user=user, name=options["name"], confirmed=True)
            record_device_event(None, device, "totp_device_enrolled")
        self.stdout.write(device.config_url)
        self.stderr.write(
            f"TOTP device {device.name!r} enrolled for {options['username']!r}: add the URI above to the "
            "authenticator app (it is the shared secret: show it to its owner only)."
        )
