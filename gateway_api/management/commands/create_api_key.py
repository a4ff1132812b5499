"""Create an API key and print its secret once (for the demo and for scripts):

manage.py create_api_key --name gateway --kind gateway
manage.py create_api_key --name shop-42 --kind client --client shop-42 --expires-days 90
"""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from gateway_api.keys import create_api_key
from gateway_api.models import KeyKind
from payments.models import Client


class Command(BaseCommand):
    help = "Create an API key (gateway or client) and print its secret, which is never shown again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", choices=KeyKind.values, default=KeyKind.GATEWAY)
        parser.add_argument("--client", help="A client key's client, by its external id.")
        parser.add_argument("--scope", action="append", dest="scopes", help="Repeat; default: the kind's own.")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        client = None
        if options["client"]:
            client = Client.objects.filter(external_id=options["client"]).first()
            if client is None:
                raise CommandError(f"no client {options['client']!r}")
        days = options["expires_days"]
        try:
            key, secret = create_api_key(
                name=options["name"],
                kind=options["kind"],
                client=client,
                scopes=options["scopes"],
                expiry_date=timezone.now() + timedelta(days=days) if days else None,
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stderr.write(f"API key {key.name!r} ({key.kind}, prefix {key.prefix}); its secret, shown once:")
        self.stdout.write(secret)
