"""The outbox event of a conversion: conversion.completed, written in the transaction that
distributes what the exchange paid (a hook on the conversion state machine). It concerns many
clients, so it names none; each client's credit shows in its payouts."""

from payouts.exchange_batches.states import BatchStatus
from pgp_project.operations.state_machine import register_transition_hook
from pgp_project.outbox.events import money, record_event

from .models import CONVERSION_MACHINE, BatchConversion


def on_conversion_transition(pk: int, from_status: str, to_status: str) -> None:
    if to_status != BatchStatus.COMPLETED:
        return
    conversion = BatchConversion.objects.get(pk=pk)
    payload = {
        "conversion_id": pk,
        "row_count": conversion.row_count,
        "total_eth": money(conversion.total_eth),
        "total_net_usd": money(conversion.total_net_usd),
        "received_usdt": money(conversion.received_usdt),
        "fee_usdt_total": money(conversion.fee_usdt_total),
        "credit_usdt_total": money(conversion.credit_usdt_total),
        "payout_tx_hash": conversion.payout_tx_hash or None,
    }
    record_event("conversion.completed", ("conversion", pk), payload)


def register_conversion_events() -> None:
    register_transition_hook(CONVERSION_MACHINE.subject, on_conversion_transition)
