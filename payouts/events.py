"""The outbox events of client payouts, written in the transaction of the transition that causes
them (a hook on the payout state machine): payout.created, payout.awaiting_approval,
payout.completed (with the exchange's payout transaction hash) and payout.failed."""

from typing import Any

from pgp_project.operations.state_machine import register_transition_hook
from pgp_project.outbox.events import money, record_event

from .exchange_batches.states import BatchStatus
from .models import PAYOUT_MACHINE, PayoutBatch

# A payout that went to review after money moved (failed or refunded) failed for its client.
_FAILED = frozenset({BatchStatus.FAILED, BatchStatus.REFUNDED})


def payout_payload(batch: PayoutBatch) -> dict[str, Any]:
    return {
        "payout_id": batch.pk,
        "client": batch.client.external_id,
        "kind": batch.kind,
        "status": batch.status,
        "payout_currency": batch.payout_currency,
        "payout_network": batch.payout_network,
        "wallet_address": batch.wallet_address,
        "total_usdt": money(batch.total_usdt),
        "source_currency": batch.source_currency,
        "source_amount": money(batch.source_amount),
        "payout_amount": money(batch.payout_amount),
        "payout_tx_hash": batch.payout_tx_hash or None,
    }


def on_payout_transition(pk: int, from_status: str, to_status: str) -> None:
    types = []
    if not from_status:
        types.append("payout.created")
    if to_status == BatchStatus.AWAITING_APPROVAL:
        types.append("payout.awaiting_approval")
    elif to_status == BatchStatus.COMPLETED:
        types.append("payout.completed")
    elif to_status in _FAILED and from_status not in _FAILED:
        types.append("payout.failed")
    if not types:
        return
    batch = PayoutBatch.objects.select_related("client").get(pk=pk)
    payload = payout_payload(batch)
    if to_status in _FAILED:
        payload["reason"] = batch.review_reason
    for event_type in types:
        record_event(event_type, ("payout", pk), payload, client_id=batch.client_id)


def register_payout_events() -> None:
    register_transition_hook(PAYOUT_MACHINE.subject, on_payout_transition)
