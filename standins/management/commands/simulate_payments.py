from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from payments.models import Client
from standins.payment_simulator import run_simulator


class Command(BaseCommand):
    help = "Post signed NOWPayments IPNs, shaped as NOWPayments documents them, for the active clients (demo traffic)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/nowpayments/")
        parser.add_argument("--interval", type=float, default=5.0)
        parser.add_argument("--eth-usd", default="3000")
        parser.add_argument("--count", type=int, default=None)
        parser.add_argument(
            "--redeposit-every",
            type=int,
            default=0,
            help="make every Nth payment a re-deposit carrying parent_payment_id (0: none, the default)",
        )

    def handle(
        self,
        *args: object,
        url: str,
        interval: float,
        eth_usd: str,
        count: int | None,
        redeposit_every: int,
        **opts: object,
    ) -> None:
        client_ids = list(Client.objects.filter(is_active=True).values_list("external_id", flat=True))
        if not client_ids:
            self.stderr.write("no active clients to simulate payments for")
            return
        run_simulator(
            url=url,
            secret=settings.NOWPAYMENTS_IPN_SECRET,
            client_ids=client_ids,
            interval=interval,
            eth_usd=Decimal(eth_usd),
            count=count,
            redeposit_every=redeposit_every,
        )
