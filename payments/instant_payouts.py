"""The seam through which a finished instant-strategy payment becomes a payout.

Payouts live in an app above this one, which registers the function that opens an instant
payout from its `AppConfig.ready`; intake calls it inside its own transaction, so the payment and
its payout are recorded together or not at all.
"""

from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured

from .models import Client, Payment

InstantPayoutOpener = Callable[[Payment, Client, Decimal], object]

_opener: list[InstantPayoutOpener] = []


def register_instant_payout_opener(opener: InstantPayoutOpener) -> None:
    _opener[:] = [opener]


def open_instant_payout(payment: Payment, client: Client, fee_percent: Decimal) -> None:
    if not _opener:
        raise ImproperlyConfigured("no installed app opens instant payouts (is `payouts` installed?)")
    _opener[0](payment, client, fee_percent)
