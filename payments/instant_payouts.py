"""The seam through which instant-strategy payments become payouts, and learn of refunds.

Payouts live in an app above this one, which registers its handler from `AppConfig.ready`;
intake calls it inside its own transaction, so the payment and its payout change together or
not at all.
"""

from decimal import Decimal
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from .models import Client, Payment


class InstantPayouts(Protocol):
    def open(self, payment: Payment, client: Client, fee_percent: Decimal) -> object:
        """One payout for a finished instant payment (safe to call twice)."""
        ...

    def refunded(self, payment: Payment) -> str:
        """NOWPayments refunded the payment after it finished: stop its payout if nothing was
        sent, and say what was done (for the event and the alert)."""
        ...


_handler: list[InstantPayouts] = []


def register_instant_payouts(handler: InstantPayouts) -> None:
    _handler[:] = [handler]


def instant_payouts() -> InstantPayouts:
    if not _handler:
        raise ImproperlyConfigured("no installed app handles instant payouts (is `payouts` installed?)")
    return _handler[0]
