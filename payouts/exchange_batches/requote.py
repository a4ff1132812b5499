"""Re-check an exchange before money leaves for it (reliability rule 10): it must still wait for
our deposit, and its fixed rate must stay valid long enough for the deposit to arrive. If not,
nothing has been sent yet: the exchange is recorded as abandoned (with its provider) and the
batch goes back to be routed afresh: the next quotes may choose another provider."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.exchange.port import ExchangeProvider, ExchangeRef, ExchangeStatus
from integrations.exchange.registry import exchange_provider, provider_before_quotes
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.state_machine import record_action, transition

from ..alerts import EXCHANGE_REQUOTED_REPEATEDLY
from ..locking import lock_batch_and_host_payment
from ..models import HOST_PAYMENT_MACHINE, HostPaymentStatus
from .flow import B, ExchangeFundedFlow
from .quotes import abandoned_entry
from .states import BatchStatus

logger = logging.getLogger(__name__)

# A batch that keeps needing fresh exchanges (a provider whose rates expire faster than our
# margin, say) is alerted from this many attempts on.
REQUOTES_BEFORE_ALERT = 3
# Where a batch may be sent back from, for a fresh exchange: nothing can have been sent yet.
REQUOTABLE = (BatchStatus.SWAP_CREATED, BatchStatus.FUNDING)


def exchange_ref(batch: B) -> ExchangeRef:
    assert batch.exchange_id is not None, "only a batch with an exchange has one to ask about"
    host_payment = batch.host_payment
    return ExchangeRef(
        id=batch.exchange_id,
        payin_address=batch.payin_address,
        from_amount=batch.exchange_from_amount,
        deposit_tx_hash=host_payment.tx_hash if host_payment is not None else None,
        deposit_confirmed=host_payment is not None and host_payment.status == HostPaymentStatus.CONFIRMED,
    )


def still_payable(batch: B, provider: ExchangeProvider) -> str | None:
    """Why the batch's exchange must not be funded now, or None when it may be (one call by id)."""
    state = provider.status(exchange_ref(batch))
    if state.status != ExchangeStatus.AWAITING_DEPOSIT:
        return f"exchange {batch.exchange_id} is {state.provider_status!r}, no longer waiting for a deposit"
    valid_until = state.valid_until or batch.exchange_valid_until
    margin = timedelta(seconds=settings.PGP_RATE_VALIDITY_MARGIN_SECONDS)
    if valid_until is not None and valid_until - timezone.now() < margin:
        return f"exchange {batch.exchange_id}'s fixed rate expires at {valid_until:%Y-%m-%d %H:%M:%S %Z}"
    return None


def confirm_before_sending(flow: ExchangeFundedFlow[B], batch: B) -> bool:
    """True if the batch's exchange may be funded now; otherwise the batch is sent back for a
    fresh exchange and False. Asks the provider, so call it holding no lock."""
    problem = still_payable(batch, exchange_provider(batch.exchange_provider))
    if problem is None:
        return True
    requote(
        flow,
        batch.pk,
        reason=f"{problem}; nothing was sent, a fresh exchange replaces it",
        exchange_id=batch.exchange_id,
        provider=batch.exchange_provider,
    )
    return False


def requote(
    flow: ExchangeFundedFlow[B], batch_id: int, *, reason: str, exchange_id: str | None, provider: str = ""
) -> B:
    """Abandon the batch's exchange and send the batch back to get a fresh one. Only while
    nothing can have been sent: the host payment, if any, must still be unsigned."""
    with transaction.atomic():
        batch, host_payment = lock_batch_and_host_payment(flow.model, batch_id)
        signed = host_payment is not None and host_payment.status != HostPaymentStatus.CREATED
        # The exchange checked is (provider, id): another provider may number one alike.
        replaced = batch.exchange_id != exchange_id or bool(provider and batch.exchange_provider != provider)
        if batch.status not in REQUOTABLE or signed or replaced:
            return batch  # moved on, or another run already replaced the exchange it checked
        back_to = BatchStatus.APPROVED if getattr(batch, "approved_by_id", None) else BatchStatus.CREATED
        transition(
            flow.machine,
            batch.pk,
            from_status=batch.status,
            to_status=back_to,
            action="requote",
            reason=reason,
            updates={
                # Routed afresh: the next quotes may choose another provider.
                "exchange_provider": provider_before_quotes(flow.pair(batch)),
                "exchange_id": None,
                "payin_address": "",
                "exchange_from_amount": None,
                "expected_amount": None,
                "exchange_valid_until": None,
                "exchange_status": "",
                "host_payment": None,
                "next_action_at": None,
                "abandoned_exchange_ids": [
                    *batch.abandoned_exchange_ids,
                    abandoned_entry(batch.exchange_provider, batch.exchange_id or ""),
                ],
                "attempts": batch.attempts + 1,
            },
        )
        if batch.attempts + 1 >= REQUOTES_BEFORE_ALERT:
            alert(
                EXCHANGE_REQUOTED_REPEATEDLY,
                Subject(flow.kind, batch.pk),
                kind=flow.kind,
                id=batch.pk,
                attempts=batch.attempts + 1,
                last=reason,
            )
        if host_payment is not None:
            record_action(
                HOST_PAYMENT_MACHINE.subject,
                host_payment.pk,
                action="discarded",
                status=host_payment.status,
                reason=f"never signed; {flow.kind} #{batch.pk} needs a fresh exchange",
            )
            host_payment.delete()
        schedule_step(flow.model, batch.pk, flow.advance_task, 0)
    logger.warning("%s #%s: exchange %s abandoned: %s", flow.kind, batch_id, batch.exchange_id, reason)
    batch.refresh_from_db()
    return batch
