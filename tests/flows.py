"""Helpers the flow tests share: payments through the front door (signed IPNs), sandbox faults,
and waiting for a batch to reach a final state."""

from decimal import Decimal
from typing import Any

import requests
from django.test import Client as HttpClient

from batching.models import BatchConversion
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, PayoutBatch
from standins.sandbox_changenow import SandboxChangeNow

from .conftest import WorkerProcess, ipn_body, post_ipn, wait_until

FINAL = (BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.FAILED, BatchStatus.REFUNDED, BatchStatus.MERGED)


def route_exchanges_to(settings: Any, *enabled: str, urls: dict[str, str] | None = None) -> None:
    """Enable exactly these providers of PGP_EXCHANGES for routing (others stay configured:
    an exchange already with them is still followed), pointing any named in `urls` there."""
    exchanges = {name: {**config, "enabled": name in enabled} for name, config in settings.PGP_EXCHANGES.items()}
    for name, url in (urls or {}).items():
        exchanges[name] = {**exchanges[name], "url": url}
    settings.PGP_EXCHANGES = exchanges


def inject(sandbox: SandboxChangeNow, spec: dict[str, Any]) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/faults", json=spec, timeout=5).raise_for_status()


def reset_sandbox(sandbox: SandboxChangeNow) -> None:
    requests.post(f"{sandbox.base_url}/sandbox/reset", timeout=5).raise_for_status()


def sandbox_exchanges(sandbox: SandboxChangeNow) -> dict[str, dict[str, Any]]:
    listing = requests.get(f"{sandbox.base_url}/sandbox/exchanges", timeout=5).json()
    return {exchange["id"]: exchange for exchange in listing["exchanges"]}


def post_eth_payment(payment_id: int, *, client_id: str, eth: str, price: str = "10.00") -> None:
    body = ipn_body(payment_id=payment_id, order_id=f"PGP-3|{client_id}", price_amount=price, outcome_amount=eth)
    assert post_ipn(HttpClient(), body).status_code == 200


def wait_final_conversion(conversion_id: int | None, timeout: float = 120) -> BatchConversion:
    assert conversion_id is not None
    return wait_until(
        lambda: BatchConversion.objects.filter(pk=conversion_id, status__in=FINAL).first(), timeout=timeout
    )


def wait_final_payout(batch_id: int, timeout: float = 120) -> PayoutBatch:
    return wait_until(lambda: PayoutBatch.objects.filter(pk=batch_id, status__in=FINAL).first(), timeout=timeout)


def host_payment_of_conversion(conversion_id: int, **conditions: object) -> HostPayment | None:
    """The host payment funding a conversion (meeting `conditions`), if it has one yet."""
    funding = BatchConversion.objects.filter(pk=conversion_id).values("host_payment_id")
    return HostPayment.objects.filter(pk__in=funding, **conditions).first()


def alert_lines(worker: WorkerProcess, name: str) -> list[str]:
    return [line for line in list(worker.output) if f"ALERT {name} " in line]


def eth(amount: str) -> Decimal:
    return Decimal(amount)
