"""A stand-in for NOWPayments in the demo: posts signed IPNs for the demo clients, shaped as
NOWPayments' documentation shows them, so that the demo exercises the intake on the real contract
rather than on one of our own making.

What it imitates, and the page behind each behaviour (all on NOWPayments' API documentation,
https://documenter.getpostman.com/view/7907941/2s93JusNJt):

* the body ("Instant Payments Notifications", "Webhooks Examples", Payments): the fields of that
  example in its order; amounts as JSON numbers, not strings; `invoice_id`, `payin_extra_id`,
  `payment_extra_ids` and `parent_payment_id` null; `purchase_id` a string of digits; a nested
  `fee` object `{"currency", "depositFee", "withdrawalFee", "serviceFee"}`;
* the statuses, one notification each ("Get payment status": waiting, confirming, confirmed,
  sending, then finished; "Usually you will get a notification per each step of processing
  payments"): `actually_paid` is 0 while waiting and the amount paid from confirming on;
* the signature ("Instant Payments Notifications", the Node example): HMAC-SHA512 of
  JSON.stringify(sortObject(body)), the primary form integrations/nowpayments_signature.py
  checks first, in the `x-nowpayments-sig` header;
* repeated deposits ("Repeated Deposits and Wrong-Asset Deposits"): a further payment to the same
  address is a new payment, with its own payment_id and `parent_payment_id` naming the first,
  valued at the current rate. Every `redeposit_every`-th payment is one (the demo sends one in
  ten; 0 sends none); every other notification carries `parent_payment_id: null`.

Amounts are Decimal here and written as exact number literals (never through a float); the
intake reads them as Decimal again.
"""

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal

import requests

from integrations.nowpayments_signature import sign
from standins.sandbox_changenow.jsonio import dumps

logger = logging.getLogger(__name__)

# The order NOWPayments notifies a payment that is paid in full ("Get payment status").
STATUS_SEQUENCE = ("waiting", "confirming", "confirmed", "sending", "finished")
# What NOWPayments keeps of the payment in the demo: outcome_amount is pay_amount less this.
DEPOSIT_FEE_SHARE = Decimal("0.005")
ETH_PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class SimulatedPayment:
    payment_id: int
    client_external_id: str
    price_usd: Decimal
    pay_eth: Decimal
    pay_address: str
    purchase_id: str
    created_at: datetime
    parent_payment_id: int | None = None


def new_payment(
    payment_id: int, client_external_id: str, price_usd: Decimal, eth_usd: Decimal, parent: "SimulatedPayment | None"
) -> SimulatedPayment:
    """A payment of `price_usd` paid in ETH at `eth_usd`; a re-deposit to `parent`'s address when
    given (priced at the current rate, as NOWPayments prices re-deposits)."""
    digest = hashlib.sha256(str(payment_id).encode()).hexdigest()
    return SimulatedPayment(
        payment_id=payment_id,
        client_external_id=parent.client_external_id if parent else client_external_id,
        price_usd=price_usd,
        pay_eth=(price_usd / eth_usd).quantize(ETH_PLACES, rounding=ROUND_DOWN),
        pay_address=parent.pay_address if parent else "0x" + digest[:40],
        purchase_id=str(int(digest[:12], 16)),
        created_at=datetime.now(UTC),
        parent_payment_id=parent.payment_id if parent else None,
    )


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulated_ipn(payment: SimulatedPayment, status: str) -> dict[str, object]:
    """The notification NOWPayments sends for `payment` reaching `status` (see the module's doc)."""
    outcome_eth = (payment.pay_eth * (1 - DEPOSIT_FEE_SHARE)).quantize(ETH_PLACES, rounding=ROUND_DOWN)
    paid = status != "waiting"
    return {
        "payment_id": payment.payment_id,
        "parent_payment_id": payment.parent_payment_id,
        "invoice_id": None,
        "payment_status": status,
        "pay_address": payment.pay_address,
        "payin_extra_id": None,
        "price_amount": payment.price_usd,
        "price_currency": "usd",
        "pay_amount": payment.pay_eth,
        "actually_paid": payment.pay_eth if paid else 0,
        "actually_paid_at_fiat": payment.price_usd if paid else 0,
        "pay_currency": "eth",
        "order_id": f"PGP-{random.randint(10_000, 99_999)}|{payment.client_external_id}",  # noqa: S311
        "order_description": "Demo channel subscription",
        "purchase_id": payment.purchase_id,
        "created_at": _timestamp(payment.created_at),
        "updated_at": _timestamp(datetime.now(UTC)),
        "outcome_amount": outcome_eth,
        "outcome_currency": "eth",
        "payment_extra_ids": None,
        "fee": {
            "currency": "eth",
            "depositFee": payment.pay_eth - outcome_eth,
            "withdrawalFee": 0,
            "serviceFee": 0,
        },
    }


def encode_ipn(body: dict[str, object]) -> bytes:
    """The body as NOWPayments sends it: amounts as exact JSON numbers."""
    return dumps(body)


def post_ipn(url: str, secret: str, body: dict[str, object], timeout: float = 10.0) -> int:
    raw = encode_ipn(body)
    response = requests.post(
        url,
        data=raw,
        headers={"Content-Type": "application/json", "x-nowpayments-sig": sign(raw, secret)},
        timeout=timeout,
    )
    return response.status_code


def _wait_for_web(url: str, timeout: float = 60.0) -> None:
    """The demo starts everything at once; begin posting once the web process answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
        except requests.RequestException:
            time.sleep(1)
        else:
            return


def run_simulator(
    *,
    url: str,
    secret: str,
    client_ids: list[str],
    interval: float,
    eth_usd: Decimal,
    count: int | None = None,
    first_payment_id: int | None = None,
    redeposit_every: int = 0,
) -> None:
    """Post one payment every `interval` seconds (forever, or `count` times), each through every
    status to finished; every `redeposit_every`-th payment (0: none) a re-deposit to an earlier
    payment's address."""
    _wait_for_web(url)
    payment_id = first_payment_id or int(time.time() * 1000)
    earlier: list[SimulatedPayment] = []
    sent = 0
    while count is None or sent < count:
        payment_id += 1
        client_id = random.choice(client_ids)  # noqa: S311 - demo traffic
        price = Decimal(random.randint(500, 1500)) / 100  # noqa: S311
        redeposit = bool(redeposit_every and earlier and (sent + 1) % redeposit_every == 0)
        parent = random.choice(earlier) if redeposit else None  # noqa: S311
        payment = new_payment(payment_id, client_id, price, eth_usd, parent)
        earlier = [*earlier[-19:], payment] if parent is None else earlier
        for status in STATUS_SEQUENCE:
            try:
                code = post_ipn(url, secret, simulated_ipn(payment, status))
                logger.info("simulated IPN %s %s for %s: HTTP %s", payment_id, status, payment.client_external_id, code)
            except requests.RequestException as exc:
                logger.warning("simulated IPN %s not delivered: %s", payment_id, type(exc).__name__)
        sent += 1
        time.sleep(interval)
