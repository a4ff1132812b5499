"""A stand-in for NOWPayments in the demo: posts signed IPNs for the demo clients.

Each simulated payment goes `waiting` -> `finished`, signed with the configured IPN secret exactly
as NOWPayments signs, so it exercises the real intake path. Amounts are generated as strings and
Decimal, never float.
"""

import json
import logging
import random
import time
from decimal import ROUND_DOWN, Decimal

import requests

from integrations.nowpayments_signature import sign

logger = logging.getLogger(__name__)


def simulated_ipn(
    payment_id: int, status: str, client_external_id: str, price_usd: Decimal, eth_usd: Decimal
) -> dict[str, object]:
    outcome_eth = (price_usd * Decimal("0.995") / eth_usd).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    return {
        "payment_id": payment_id,
        "payment_status": status,
        "pay_address": "0x0000000000000000000000000000000000000000",
        "price_amount": str(price_usd),
        "price_currency": "usd",
        "pay_amount": str(outcome_eth),
        "actually_paid": str(outcome_eth) if status == "finished" else "0",
        "pay_currency": "eth",
        "order_id": f"PGP-{random.randint(10_000, 99_999)}|{client_external_id}",  # noqa: S311
        "order_description": "Demo channel subscription",
        "outcome_amount": str(outcome_eth),
        "outcome_currency": "eth",
    }


def post_ipn(url: str, secret: str, body: dict[str, object], timeout: float = 10.0) -> int:
    raw = json.dumps(body).encode()
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
) -> None:
    """Post one payment every `interval` seconds (forever, or `count` times)."""
    _wait_for_web(url)
    payment_id = first_payment_id or int(time.time() * 1000)
    sent = 0
    while count is None or sent < count:
        payment_id += 1
        client_id = random.choice(client_ids)  # noqa: S311 - demo traffic
        price = Decimal(random.randint(500, 1500)) / 100  # noqa: S311
        for status in ("waiting", "finished"):
            try:
                code = post_ipn(url, secret, simulated_ipn(payment_id, status, client_id, price, eth_usd))
                logger.info("simulated IPN %s %s for %s: HTTP %s", payment_id, status, client_id, code)
            except requests.RequestException as exc:
                logger.warning("simulated IPN %s not delivered: %s", payment_id, type(exc).__name__)
        sent += 1
        time.sleep(interval)
