"""Host payments: the one on-chain send from the hot wallet that funds a batch's exchange, on
whichever chain its asset lives (the chain adapter does what is chain-specific).

created -> signed (sending slot assigned under the sender's lock; raw transaction and hash
committed before anything is sent) -> broadcast -> confirmed (N confirmations, success) | failed.

A retry re-broadcasts the same committed bytes, so a crash at any point can never produce a
second, different transaction for the same batch (reliability rule 3).
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.assets import Asset
from pgp_project.money import to_base_units
from pgp_project.operations.alerts import Subject, alert, forget_alert
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step
from pgp_project.operations.state_machine import record_created, transition

from ..alerts import (
    HOST_PAYMENT_FAILED,
    HOST_PAYMENT_FEE_CAP,
    HOST_PAYMENT_STUCK,
    HOT_WALLET_INSUFFICIENT,
    SIGNING_KEY_MISSING,
)
from ..exchange_batches.flow import B, ExchangeFundedFlow, exchange_funded_flow
from ..exchange_batches.requote import confirm_before_sending
from ..exchange_batches.states import BatchStatus
from ..exchange_batches.transitions import to_review
from ..locking import lock_host_payment, lock_host_payment_with_owner
from ..models import (
    HOST_PAYMENT_MACHINE,
    IN_FLIGHT,
    HostPayment,
    HostPaymentCandidate,
    HostPaymentStatus,
    HostPaymentWait,
)
from .ports import (
    ChainAdapter,
    FeesAboveCap,
    InsufficientHotWalletBalance,
    SendingSlotTaken,
    SignedCandidate,
    SigningKeyMissing,
    chain_adapter,
)

logger = logging.getLogger(__name__)

ADVANCE_HOST_PAYMENT_TASK = "payouts.advance_host_payment"


class HostPaymentMismatch(Exception):
    """The batch asks for a different amount or destination than its stored host payment."""


def ensure_host_payment(
    *, flow: ExchangeFundedFlow[B], owner: B, asset: Asset, amount: Decimal, to_address: str
) -> HostPayment:
    """The batch's single host payment, created on first call; the same one on every later call.
    The caller holds the batch's row lock."""
    if owner.host_payment_id is None:
        host_payment = HostPayment.objects.create(
            deadline_at=timezone.now() + timedelta(seconds=settings.PGP_HOST_PAYMENT_DEADLINE_SECONDS),
            owner_kind=flow.kind,
            chain=asset.chain,
            asset=asset.symbol,
            amount=amount,
            amount_base_units=to_base_units(amount, asset.decimals),
            from_address=chain_adapter(asset.chain).hot_wallet_address(),
            to_address=to_address,
        )
        flow.model._default_manager.filter(pk=owner.pk).update(host_payment=host_payment)
        owner.host_payment_id = host_payment.pk
        record_created(
            HOST_PAYMENT_MACHINE.subject, host_payment.pk, host_payment.status, reason=f"funds {flow.kind} #{owner.pk}"
        )
        return host_payment
    existing = HostPayment.objects.get(pk=owner.host_payment_id)
    if (
        existing.amount != amount
        or existing.to_address.lower() != to_address.lower()
        or (existing.chain, existing.asset) != asset.key
    ):
        raise HostPaymentMismatch(
            f"host payment #{existing.pk} sends {existing.amount} {existing.asset} to {existing.to_address}, "
            f"not {amount} {asset.symbol} to {to_address}"
        )
    return existing


def advance_host_payment(host_payment_id: int) -> HostPayment:
    """Do whatever this host payment's state still needs; safe to call any number of times."""
    host_payment = HostPayment.objects.get(pk=host_payment_id)
    if host_payment.status == HostPaymentStatus.CREATED:
        if not _owner_still_wants_it(host_payment):
            return host_payment
        try:
            host_payment = sign_host_payment(host_payment.pk)
        except InsufficientHotWalletBalance as exc:
            return _wait(host_payment.pk, HostPaymentWait.BALANCE, exc)
        except FeesAboveCap as exc:
            return _wait(host_payment.pk, HostPaymentWait.FEE_CAP, exc)
        except SigningKeyMissing as exc:
            return _wait(host_payment.pk, HostPaymentWait.SIGNING_KEY, exc)
    if host_payment.status in IN_FLIGHT:
        host_payment = broadcast_and_check(host_payment.pk)
    if host_payment.status in IN_FLIGHT:
        schedule_step(HostPayment, host_payment.pk, ADVANCE_HOST_PAYMENT_TASK, settings.PGP_CHAIN_POLL_SECONDS)
    return host_payment


def _owner_still_wants_it(host_payment: HostPayment) -> bool:
    """Just before signing, the batch re-checks its exchange (it still waits for this deposit, at
    a rate that still holds); if not, the batch discards this unsigned payment for a fresh one."""
    flow = exchange_funded_flow(host_payment.owner_kind)
    owner = flow.model._default_manager.filter(host_payment=host_payment).first()
    if owner is None or owner.status != BatchStatus.FUNDING:
        return True  # signing itself refuses what its batch no longer funds
    return confirm_before_sending(flow, owner)


def sign_host_payment(host_payment_id: int) -> HostPayment:
    """Assign the sending slot under the sender's lock, sign, and commit bytes and hash together."""
    with transaction.atomic():
        # Lock order everywhere: the owning batch, then its host payment (then the sender). A
        # batch that is no longer funding (cancelled, sent to review) must not have it signed.
        owner, host_payment = lock_host_payment_with_owner(host_payment_id)
        if host_payment.status != HostPaymentStatus.CREATED:
            return host_payment  # signed by an earlier run: never sign a second transaction
        if owner.status != BatchStatus.FUNDING:
            logger.warning("host payment #%s not signed: its batch is %s", host_payment.pk, owner.status)
            return host_payment
        candidate = chain_adapter(host_payment.chain).sign_first(host_payment)
        _keep_candidate(host_payment, candidate)
        transition(
            HOST_PAYMENT_MACHINE,
            host_payment.pk,
            from_status=HostPaymentStatus.CREATED,
            to_status=HostPaymentStatus.SIGNED,
            reason=f"signed {candidate.tx_hash}",
            updates={
                "tx_hash": candidate.tx_hash,
                "raw_transaction": candidate.raw_transaction,
                "signed_at": timezone.now(),
                "waiting_for": "",
            },
        )
    host_payment.refresh_from_db()
    logger.info("host payment #%s signed: %s", host_payment.pk, host_payment.tx_hash)
    return host_payment


# The alert written while a payment waits for each thing.
WAIT_ALERTS = {
    HostPaymentWait.BALANCE: HOT_WALLET_INSUFFICIENT,
    HostPaymentWait.FEE_CAP: HOST_PAYMENT_FEE_CAP,
    HostPaymentWait.SIGNING_KEY: SIGNING_KEY_MISSING,
}


def _wait(host_payment_id: int, what: HostPaymentWait, error: Exception) -> HostPayment:
    """Leave the payment unsigned, say what it waits for, and look again later; alert when the
    wait starts and then on a throttle, never on every run."""
    subject = Subject("host_payment", host_payment_id)
    waiting = HostPayment.objects.filter(pk=host_payment_id)
    recorded = {"last_error": str(error)[:2000], "waiting_for": what, "updated_at": timezone.now()}
    # One transaction: nobody sees the new reason without its error. A new reason to wait is
    # news: alerted at once, even if the payment waited for it before (balance, then fees, then
    # balance again) less than the repeat interval ago.
    with transaction.atomic():
        if waiting.exclude(waiting_for=what).update(**recorded):
            forget_alert(WAIT_ALERTS[what], subject)
        else:
            waiting.update(**recorded)
        alert(WAIT_ALERTS[what], subject, host_payment=host_payment_id, error=error)
    schedule_step(HostPayment, host_payment_id, ADVANCE_HOST_PAYMENT_TASK, settings.PGP_BALANCE_RETRY_SECONDS)
    return HostPayment.objects.get(pk=host_payment_id)


def broadcast_and_check(host_payment_id: int) -> HostPayment:
    """Broadcast the committed bytes if not mined yet (replacing them with higher fees, in the
    same slot, when they have been stuck too long), then record confirmations; settle the
    payment as confirmed (enough confirmations, success) or failed (reverted or displaced)."""
    host_payment = HostPayment.objects.get(pk=host_payment_id)
    if host_payment.status not in IN_FLIGHT:
        return host_payment
    adapter = chain_adapter(host_payment.chain)
    mined = adapter.find_mined(_candidate_hashes(host_payment))
    if mined is None:
        return _send(host_payment, adapter)
    if not mined.succeeded:
        return _settle(
            host_payment.pk, HostPaymentStatus.FAILED, error=f"{mined.tx_hash} reverted in block {mined.block_number}"
        )
    confirmations = adapter.confirmations(mined.block_number)
    if host_payment.status == HostPaymentStatus.SIGNED:
        _mark_broadcast(host_payment.pk, f"found mined in block {mined.block_number}")
    raw = (
        HostPaymentCandidate.objects.filter(host_payment=host_payment, tx_hash=mined.tx_hash)
        .values_list("raw_transaction", flat=True)
        .first()
    )
    HostPayment.objects.filter(pk=host_payment.pk, status=HostPaymentStatus.BROADCAST).update(
        # The mined candidate is the payment, whichever of ours it was.
        tx_hash=mined.tx_hash,
        raw_transaction=raw or host_payment.raw_transaction,
        confirmations=confirmations,
        block_number=mined.block_number,
        network_fee=mined.network_fee,
        updated_at=timezone.now(),
    )
    if confirmations >= adapter.confirmations_required:
        return _settle(host_payment.pk, HostPaymentStatus.CONFIRMED)
    host_payment.refresh_from_db()
    return host_payment


def _send(host_payment: HostPayment, adapter: ChainAdapter) -> HostPayment:
    if _stuck_too_long(host_payment):
        host_payment = _replace_with_higher_fees(host_payment.pk, adapter)
    try:
        adapter.broadcast(host_payment.raw_transaction, host_payment.tx_hash or "")
    except SendingSlotTaken as exc:
        if adapter.find_mined(_candidate_hashes(host_payment)) is not None:
            return host_payment  # one of our own candidates was mined meanwhile; next run confirms it
        return _settle(host_payment.pk, HostPaymentStatus.FAILED, error=str(exc))
    if host_payment.status == HostPaymentStatus.SIGNED:
        _mark_broadcast(host_payment.pk, f"broadcast {host_payment.tx_hash}")
    host_payment.refresh_from_db()
    return host_payment


def _mark_broadcast(host_payment_id: int, reason: str) -> None:
    transition(
        HOST_PAYMENT_MACHINE,
        host_payment_id,
        from_status=HostPaymentStatus.SIGNED,
        to_status=HostPaymentStatus.BROADCAST,
        reason=reason,
        updates={"broadcast_at": timezone.now()},
    )


def _candidate_hashes(host_payment: HostPayment) -> list[str]:
    hashes = list(HostPaymentCandidate.objects.filter(host_payment=host_payment).values_list("tx_hash", flat=True))
    return hashes or [host_payment.tx_hash or ""]


def _stuck_too_long(host_payment: HostPayment) -> bool:
    return (
        host_payment.status == HostPaymentStatus.BROADCAST
        and host_payment.broadcast_at is not None
        and timezone.now() - host_payment.broadcast_at > timedelta(seconds=settings.PGP_REPLACE_STUCK_AFTER_SECONDS)
    )


def _replace_with_higher_fees(host_payment_id: int, adapter: ChainAdapter) -> HostPayment:
    """Re-sign the same transfer in the same slot with higher fees, within our cap; every
    candidate's hash is kept, so whichever is mined is recognised."""
    with transaction.atomic():
        host_payment = lock_host_payment(host_payment_id)
        if not _stuck_too_long(host_payment):
            return host_payment  # another run replaced it already
        try:
            candidate = adapter.sign_replacement(host_payment)
        except SigningKeyMissing as exc:
            # The signed transaction stays current and keeps being broadcast; a person must add
            # the key back for a higher-fee replacement.
            subject = Subject("host_payment", host_payment.pk)
            alert(SIGNING_KEY_MISSING, subject, host_payment=host_payment.pk, error=exc)
            HostPayment.objects.filter(pk=host_payment.pk).update(broadcast_at=timezone.now())
            return host_payment
        if candidate is None:
            alert(
                HOST_PAYMENT_STUCK,
                Subject("host_payment", host_payment.pk),
                host_payment=host_payment.pk,
                tx=host_payment.tx_hash,
                unmined="a replacement would pass the fee cap",
            )
            HostPayment.objects.filter(pk=host_payment.pk).update(broadcast_at=timezone.now())
            return host_payment
        replaced = host_payment.tx_hash
        _keep_candidate(host_payment, candidate)
        host_payment.tx_hash = candidate.tx_hash
        host_payment.raw_transaction = candidate.raw_transaction
        host_payment.broadcast_at = timezone.now()
        host_payment.save(update_fields=["tx_hash", "raw_transaction", "broadcast_at", "updated_at"])
    logger.warning(
        "host payment #%s: %s stuck, replaced by %s (same slot, higher fees)",
        host_payment.pk,
        replaced,
        host_payment.tx_hash,
    )
    return host_payment


def _keep_candidate(host_payment: HostPayment, candidate: SignedCandidate) -> None:
    HostPaymentCandidate.objects.create(
        host_payment=host_payment,
        tx_hash=candidate.tx_hash,
        raw_transaction=candidate.raw_transaction,
        fee_details=candidate.fee_details,
    )


def _settle(host_payment_id: int, status: HostPaymentStatus, *, error: str = "") -> HostPayment:
    """Compare-and-set into a final status, then wake the owning batch's flow (the callback)."""
    with transaction.atomic():
        now = timezone.now()
        changed = transition(
            HOST_PAYMENT_MACHINE,
            host_payment_id,
            from_status=IN_FLIGHT,
            to_status=status,
            reason=error or "confirmed",
            updates={
                "last_error": error,
                "confirmed_at": now if status == HostPaymentStatus.CONFIRMED else None,
                "next_action_at": None,
            },
        )
        host_payment = HostPayment.objects.get(pk=host_payment_id)
        if changed:
            if status == HostPaymentStatus.FAILED:
                alert(
                    HOST_PAYMENT_FAILED,
                    Subject("host_payment", host_payment.pk),
                    host_payment=host_payment.pk,
                    tx=host_payment.tx_hash,
                    reason=error,
                )
            owner = exchange_funded_flow(host_payment.owner_kind)
            owner_id = owner.model._default_manager.values_list("pk", flat=True).get(host_payment=host_payment)
            enqueue_after_commit(owner.advance_task, owner_id)
    return host_payment


def host_payment_step_failed(host_payment_id: int, reason: str) -> None:
    """A host payment's step failed for good: the batch it funds goes to review, alerted. The
    payment itself keeps its state (a signed one is still followed to the end)."""
    host_payment = HostPayment.objects.filter(pk=host_payment_id).first()
    if host_payment is None:
        return
    flow = exchange_funded_flow(host_payment.owner_kind)
    owner = flow.model._default_manager.filter(host_payment=host_payment).first()
    if owner is not None:
        to_review(flow, owner, BatchStatus.FAILED, f"host payment #{host_payment.pk} failed a step: {reason}")
