"""Host payments: the one on-chain send from the hot wallet that funds a batch's exchange.

created -> signed (nonce assigned under the wallet row lock; raw transaction and hash committed
before anything is sent) -> broadcast -> confirmed (N confirmations, receipt status 1) | failed.

A retry re-broadcasts the same committed bytes, so a crash at any point can never produce a
second, different transaction for the same batch (reliability rule 3).
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account

from batching.models import BatchConversion
from batching.states import BatchStatus
from integrations.ethereum import EthereumGateway, NonceTakenByAnotherTransaction, Receipt, SignedTransfer
from pgp_project.money import ETH_PLACES, USDT_PLACES, to_base_units
from pgp_project.operations.scheduling import enqueue_after_commit, schedule_step
from pgp_project.operations.selectors import get_runtime_settings

from .models import HostAsset, HostPayment, HostPaymentAttempt, HostPaymentStatus, HotWallet, PayoutBatch

logger = logging.getLogger(__name__)

ADVANCE_TASK = "payouts.advance_host_payment"
# Which task to wake when a host payment settles, by the kind of batch that owns it.
OWNER_ADVANCE_TASKS = {"conversion": "batching.advance_conversion", "payout_batch": "payouts.advance_payout"}
IN_FLIGHT = (HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST)


class HostPaymentMismatch(Exception):
    """The batch asks for a different amount or destination than its stored host payment."""


@dataclass(frozen=True)
class HotWalletKey:
    address: str
    private_key: str

    def __repr__(self) -> str:  # never print the key
        return f"HotWalletKey({self.address})"


def hot_wallet() -> HotWalletKey:
    key = settings.HOT_WALLET_PRIVATE_KEY
    if not key:
        raise RuntimeError("HOT_WALLET_PRIVATE_KEY is not configured")
    return HotWalletKey(address=Account.from_key(key).address, private_key=key)


def ensure_host_payment(
    *, owner: BatchConversion | PayoutBatch, asset: HostAsset, amount: Decimal, to_address: str
) -> HostPayment:
    """The batch's single host payment, created on first call; the same one on every later call."""
    owner_field = "conversion" if isinstance(owner, BatchConversion) else "payout_batch"
    existing = HostPayment.objects.filter(**{owner_field: owner}).first()
    if existing is None:
        places = ETH_PLACES if asset == HostAsset.ETH else USDT_PLACES
        try:
            with transaction.atomic():
                existing = HostPayment.objects.create(
                    **{owner_field: owner},
                    asset=asset,
                    amount=amount,
                    amount_base_units=to_base_units(amount, places),
                    from_address=hot_wallet().address,
                    to_address=to_address,
                )
        except IntegrityError:
            existing = HostPayment.objects.get(**{owner_field: owner})  # a concurrent run won
    if existing.amount != amount or existing.to_address.lower() != to_address.lower() or existing.asset != asset:
        raise HostPaymentMismatch(
            f"host payment #{existing.pk} sends {existing.amount} {existing.asset} to {existing.to_address}, "
            f"not {amount} {asset} to {to_address}"
        )
    return existing


def advance_host_payment(host_payment_id: int, gateway: EthereumGateway | None = None) -> HostPayment:
    """Do whatever this host payment's state still needs; safe to call any number of times."""
    gateway = gateway or EthereumGateway()
    payment = HostPayment.objects.get(pk=host_payment_id)
    if payment.status == HostPaymentStatus.CREATED:
        try:
            payment = sign_host_payment(payment.pk, gateway)
        except InsufficientHotWalletBalance as exc:
            return _wait_for_balance(payment.pk, exc)
    if payment.status in IN_FLIGHT:
        payment = broadcast_and_check(payment.pk, gateway)
    if payment.status in IN_FLIGHT:
        schedule_step(HostPayment, payment.pk, ADVANCE_TASK, settings.PGP_CHAIN_POLL_SECONDS)
    return payment


def sign_host_payment(host_payment_id: int, gateway: EthereumGateway) -> HostPayment:
    """Assign the nonce under the wallet row lock, sign, and commit bytes and hash together."""
    wallet = hot_wallet()
    max_fee_cap = settings.ETH_MAX_FEE_GWEI * 10**9
    with transaction.atomic():
        # Lock order everywhere: the owning batch, then its host payment. A batch that is no
        # longer funding (cancelled, sent to review) must not have its payment signed.
        unlocked = HostPayment.objects.get(pk=host_payment_id)
        owner = _locked_owner(unlocked)
        payment = HostPayment.objects.select_for_update().get(pk=host_payment_id)
        if payment.status != HostPaymentStatus.CREATED:
            return payment  # signed by an earlier run: never sign a second transaction
        if owner.status != BatchStatus.FUNDING:
            logger.warning("host payment #%s not signed: its batch is %s", payment.pk, owner.status)
            return payment
        wallet_row = _locked_wallet_row(payment.from_address)
        # The chain's count covers sends made outside this system; ours covers signed but not
        # yet broadcast transactions. The larger is the first free nonce.
        nonce = max(wallet_row.next_nonce, gateway.pending_nonce(payment.from_address))
        fees = gateway.fees(max_fee_cap)
        # Amount first, without gas: estimating gas for a token transfer the wallet cannot
        # cover would revert instead of telling us to wait.
        _require_hot_wallet_balance(payment, 0, gateway)
        signed = _sign(payment, gateway, wallet, nonce, fees)
        _require_hot_wallet_balance(payment, signed.max_fee_per_gas * signed.gas_limit, gateway)
        _make_current(payment, signed)
        payment.status = HostPaymentStatus.SIGNED
        payment.signed_at = timezone.now()
        payment.save()
        wallet_row.next_nonce = signed.nonce + 1
        wallet_row.save(update_fields=["next_nonce", "updated_at"])
    logger.info("host payment #%s signed: nonce %s hash %s", payment.pk, payment.nonce, payment.tx_hash)
    return payment


class InsufficientHotWalletBalance(Exception):
    """The hot wallet cannot cover this payment yet: the batch waits (it does not fail)."""


def _require_hot_wallet_balance(payment: HostPayment, max_gas_cost_wei: int, gateway: EthereumGateway) -> None:
    """The wallet must hold the amount plus the maximum gas (ETH), or the tokens plus the gas
    ETH (USDT), net of our payments that are signed but not yet mined."""
    unmined = HostPayment.objects.filter(
        from_address=payment.from_address, status__in=IN_FLIGHT, block_number__isnull=True
    ).exclude(pk=payment.pk)
    reserved_eth = sum(
        int(p.max_fee_per_gas or 0) * int(p.gas_limit or 0)
        + (int(p.amount_base_units) if p.asset == HostAsset.ETH else 0)
        for p in unmined
    )
    reserved_usdt = sum(int(p.amount_base_units) for p in unmined if p.asset == HostAsset.USDT)
    needed_eth = max_gas_cost_wei + reserved_eth
    needed_usdt = reserved_usdt
    if payment.asset == HostAsset.ETH:
        needed_eth += int(payment.amount_base_units)
    else:
        needed_usdt += int(payment.amount_base_units)
    have_eth = gateway.eth_balance(payment.from_address)
    have_usdt = gateway.token_balance(settings.USDT_CONTRACT_ADDRESS, payment.from_address) if needed_usdt else 0
    if have_eth < needed_eth or have_usdt < needed_usdt:
        raise InsufficientHotWalletBalance(
            f"hot wallet {payment.from_address} holds {have_eth} wei / {have_usdt} USDT units; "
            f"host payment #{payment.pk} needs {needed_eth} wei / {needed_usdt} USDT units "
            "(amount, maximum gas, and unmined payments)"
        )


def _wait_for_balance(payment_id: int, error: InsufficientHotWalletBalance) -> HostPayment:
    """Leave the payment unsigned and look again later; alert once per payment, not every run."""
    now = timezone.now()
    HostPayment.objects.filter(pk=payment_id).update(last_error=str(error), updated_at=now)
    if HostPayment.objects.filter(pk=payment_id, balance_alerted_at__isnull=True).update(balance_alerted_at=now):
        logger.error("ALERT hot_wallet_insufficient host_payment=%s %s", payment_id, error)
    schedule_step(HostPayment, payment_id, ADVANCE_TASK, settings.PGP_BALANCE_RETRY_SECONDS)
    return HostPayment.objects.get(pk=payment_id)


def _sign(
    payment: HostPayment, gateway: EthereumGateway, wallet: HotWalletKey, nonce: int, fees: tuple[int, int]
) -> SignedTransfer:
    if payment.asset == HostAsset.ETH:
        return gateway.sign_eth_transfer(
            private_key=wallet.private_key,
            to=payment.to_address,
            amount_wei=int(payment.amount_base_units),
            nonce=nonce,
            fees=fees,
        )
    return gateway.sign_token_transfer(
        private_key=wallet.private_key,
        token=settings.USDT_CONTRACT_ADDRESS,
        to=payment.to_address,
        amount_units=int(payment.amount_base_units),
        nonce=nonce,
        fees=fees,
    )


def _make_current(payment: HostPayment, signed: SignedTransfer) -> None:
    """`signed` becomes the transaction this payment broadcasts (caller saves); every
    candidate is also kept as an attempt, so any of them being mined is recognised."""
    payment.nonce = signed.nonce
    payment.raw_transaction = signed.raw_transaction
    payment.tx_hash = signed.tx_hash
    payment.max_fee_per_gas = signed.max_fee_per_gas
    payment.max_priority_fee_per_gas = signed.max_priority_fee_per_gas
    payment.gas_limit = signed.gas_limit
    _record_attempt(payment, signed)


def _record_attempt(payment: HostPayment, signed: SignedTransfer) -> None:
    HostPaymentAttempt.objects.create(
        host_payment=payment,
        nonce=signed.nonce,
        tx_hash=signed.tx_hash,
        raw_transaction=signed.raw_transaction,
        max_fee_per_gas=signed.max_fee_per_gas,
        max_priority_fee_per_gas=signed.max_priority_fee_per_gas,
    )


def _locked_owner(payment: HostPayment) -> BatchConversion | PayoutBatch:
    if payment.conversion_id:
        return BatchConversion.objects.select_for_update().get(pk=payment.conversion_id)
    return PayoutBatch.objects.select_for_update().get(pk=payment.payout_batch_id)


def _locked_wallet_row(address: str) -> HotWallet:
    HotWallet.objects.get_or_create(address=address)
    return HotWallet.objects.select_for_update().get(address=address)


def broadcast_and_check(host_payment_id: int, gateway: EthereumGateway) -> HostPayment:
    """Broadcast the committed bytes if not mined yet (replacing them with higher fees, same
    nonce, when they have been stuck too long), then record confirmations; settle the payment
    as confirmed (enough confirmations, status 1) or failed (reverted or displaced)."""
    payment = HostPayment.objects.get(pk=host_payment_id)
    if payment.status not in IN_FLIGHT:
        return payment
    mined = _mined_attempt(payment, gateway)
    if mined is None:
        if _stuck_too_long(payment):
            payment = _replace_with_higher_fees(payment.pk, gateway)
        try:
            gateway.broadcast(payment.raw_transaction, payment.tx_hash)
        except NonceTakenByAnotherTransaction as exc:
            if _mined_attempt(payment, gateway) is not None:
                return payment  # one of our own attempts was mined meanwhile; next run confirms it
            return _settle(payment.pk, HostPaymentStatus.FAILED, error=str(exc))
        now = timezone.now()
        HostPayment.objects.filter(pk=payment.pk, status=HostPaymentStatus.SIGNED).update(
            status=HostPaymentStatus.BROADCAST, broadcast_at=now, updated_at=now
        )
        payment.refresh_from_db()
        return payment
    tx_hash, receipt = mined
    if receipt.status != 1:
        return _settle(
            payment.pk, HostPaymentStatus.FAILED, error=f"{tx_hash} reverted in block {receipt.block_number}"
        )
    confirmations = gateway.confirmations(receipt)
    attempt = HostPaymentAttempt.objects.filter(host_payment=payment, tx_hash=tx_hash).first()
    HostPayment.objects.filter(pk=payment.pk, status__in=IN_FLIGHT).update(
        status=HostPaymentStatus.BROADCAST,
        # The mined attempt is the payment, whichever of our candidates it was.
        tx_hash=tx_hash,
        raw_transaction=attempt.raw_transaction if attempt else payment.raw_transaction,
        confirmations=confirmations,
        block_number=receipt.block_number,
        gas_used=receipt.gas_used,
        fee_wei=receipt.gas_used * receipt.effective_gas_price,
        updated_at=timezone.now(),
    )
    if confirmations >= get_runtime_settings().confirmations_required:
        return _settle(payment.pk, HostPaymentStatus.CONFIRMED)
    payment.refresh_from_db()
    return payment


def _mined_attempt(payment: HostPayment, gateway: EthereumGateway) -> tuple[str, Receipt] | None:
    """The receipt of whichever of our candidate transactions was mined, if any."""
    hashes = list(HostPaymentAttempt.objects.filter(host_payment=payment).values_list("tx_hash", flat=True))
    for tx_hash in hashes or [payment.tx_hash]:
        receipt = gateway.receipt(tx_hash)
        if receipt is not None:
            return tx_hash, receipt
    return None


def _stuck_too_long(payment: HostPayment) -> bool:
    return (
        payment.status == HostPaymentStatus.BROADCAST
        and payment.broadcast_at is not None
        and timezone.now() - payment.broadcast_at > timedelta(seconds=settings.PGP_REPLACE_STUCK_AFTER_SECONDS)
    )


def _replace_with_higher_fees(host_payment_id: int, gateway: EthereumGateway) -> HostPayment:
    """Re-sign the same transfer with the same nonce and fees raised by at least the 12.5 %
    nodes require (or to the network's current level), within our cap; keep every hash."""
    cap = settings.ETH_MAX_FEE_GWEI * 10**9
    with transaction.atomic():
        payment = HostPayment.objects.select_for_update().get(pk=host_payment_id)
        if not _stuck_too_long(payment):
            return payment  # another run replaced it already
        network_max, network_tip = gateway.fees(cap)
        bumped_max = max(network_max, int(payment.max_fee_per_gas) * 9 // 8 + 1)
        bumped_tip = max(network_tip, int(payment.max_priority_fee_per_gas) * 9 // 8 + 1)
        if bumped_max > cap:
            logger.error("ALERT host_payment_stuck host_payment=%s tx=%s fee cap reached", payment.pk, payment.tx_hash)
            HostPayment.objects.filter(pk=payment.pk).update(broadcast_at=timezone.now())
            return payment
        signed = _sign(payment, gateway, hot_wallet(), int(payment.nonce), (bumped_max, min(bumped_tip, bumped_max)))
        replaced = payment.tx_hash
        _make_current(payment, signed)
        payment.broadcast_at = timezone.now()
        payment.save()
    logger.warning(
        "host payment #%s: %s stuck, replaced by %s (same nonce, higher fees)", payment.pk, replaced, payment.tx_hash
    )
    return payment


def _settle(host_payment_id: int, status: HostPaymentStatus, *, error: str = "") -> HostPayment:
    """Compare-and-set into a final status, then wake the owning batch's flow (the callback)."""
    with transaction.atomic():
        now = timezone.now()
        changed = HostPayment.objects.filter(pk=host_payment_id, status__in=IN_FLIGHT).update(
            status=status,
            last_error=error,
            confirmed_at=now if status == HostPaymentStatus.CONFIRMED else None,
            next_action_at=None,
            updated_at=now,
        )
        payment = HostPayment.objects.get(pk=host_payment_id)
        if changed:
            if status == HostPaymentStatus.FAILED:
                logger.error(
                    "ALERT host_payment_failed host_payment=%s tx=%s reason=%s", payment.pk, payment.tx_hash, error
                )
            owner_kind = "conversion" if payment.conversion_id else "payout_batch"
            owner_id = payment.conversion_id or payment.payout_batch_id
            enqueue_after_commit(OWNER_ADVANCE_TASKS[owner_kind], owner_id)
    return payment
