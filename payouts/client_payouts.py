"""Client payouts: each client's converted USDT (threshold strategy) or one payment's ETH
(instant strategy) exchanged into the client's currency and paid to the client's wallet.

The chain is the shared exchange-funded one (exchange_batches/); this module says only what is
particular to payouts: which rows are claimed, the address check, and what "finished" means
(rows paid out). Approval lives in approvals.py.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from integrations.assets import ETH, USDT_ERC20, Asset, asset
from integrations.exchange import routing
from integrations.exchange.port import (
    AmountRange,
    ExchangeError,
    ExchangePair,
    ExchangeRefused,
    ExchangeState,
)
from integrations.exchange.registry import provider_before_quotes
from payments import accumulation
from payments.models import Client, Payment
from payments.reference_prices import quoted_usdt_value, reference_value_usd
from payments.selectors import unclaimed_credit_by_client
from pgp_project.money import ETH_QUANTUM, percent_of
from pgp_project.money_display import format_amount
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.locks import try_advisory_xact_lock
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_created, transition

from .alerts import PAYOUT_CLAIM_FAILED, PAYOUT_WAITING
from .exchange_batches.flow import ExchangeFundedFlow
from .exchange_batches.states import BatchStatus
from .exchange_batches.transitions import move, to_review
from .host_payments.ports import chain_adapter, configured_chains
from .locking import lock_batch
from .models import PAYOUT_MACHINE, PayoutBatch, PayoutKind

logger = logging.getLogger(__name__)

ADVANCE_PAYOUT_TASK = "payouts.advance_payout"
CHECK_CLIENT_PAYOUTS_TASK = "payouts.check_client_payouts"
# What each kind of payout sends from the hot wallet: the converted USDT, or the payment's ETH.
SOURCE_ASSETS: dict[str, Asset] = {
    PayoutKind.THRESHOLD: USDT_ERC20,
    PayoutKind.INSTANT: ETH,
    PayoutKind.INSTANT_MERGED: ETH,
}
INSTANT_KINDS = (PayoutKind.INSTANT, PayoutKind.INSTANT_MERGED)


def source_asset(kind: str, currency: str, network: str) -> Asset:
    """What the hot wallet sends for a payout. A client paid in the very asset its credit is kept
    in (USDT), on a chain where the hot wallet holds and sends it, is paid straight from there: a
    direct transfer, no exchange, no spread. Otherwise the payout is funded from the USDT the
    conversions buy (or an instant payment's ETH) through an exchange."""
    source = SOURCE_ASSETS[kind]
    if kind == PayoutKind.THRESHOLD and currency == source.symbol and network in configured_chains():
        try:
            held = asset(network, currency)
        except LookupError:
            return source
        if chain_adapter(network).sends(held.symbol):
            return held
    return source


def payout_pair(kind: str, currency: str, network: str) -> ExchangePair:
    source = source_asset(kind, currency, network)
    return ExchangePair(source, asset(network, currency))


class PayoutFlow(ExchangeFundedFlow):
    machine = PAYOUT_MACHINE
    advance_task = ADVANCE_PAYOUT_TASK
    release_note = "The instant payment's ETH is still in the hot wallet: pay it out or refund it by hand."

    def pair(self, batch: PayoutBatch) -> ExchangePair:
        return payout_pair(batch.kind, batch.payout_currency, batch.payout_network)

    def host_asset(self, batch: PayoutBatch) -> Asset:
        return source_asset(batch.kind, batch.payout_currency, batch.payout_network)

    def send_amount(self, batch: PayoutBatch) -> Decimal:
        return batch.source_amount

    def payout_address(self, batch: PayoutBatch) -> str:
        return batch.wallet_address

    def payout_extra_id(self, batch: PayoutBatch) -> str:
        return batch.payout_extra_id

    def before_exchange(self, batch: PayoutBatch) -> PayoutBatch:
        """Measure what an instant payout sends; never pay an address the payout's network cannot
        receive at: ask before anything (the first provider of the pair that answers)."""
        batch = measure_value_sent(batch)
        if batch.status not in (BatchStatus.CREATED, BatchStatus.APPROVED):
            return batch
        check, checked_by = routing.validate_address(self.pair(batch), batch.wallet_address)
        if check.valid:
            return batch
        if not check.checked:
            return to_review(
                self,
                batch,
                BatchStatus.FAILED,
                f"no enabled exchange provider can check a {batch.payout_currency} address on "
                f"{batch.payout_network} ({check.message}); nothing was sent. Enable a provider that checks "
                "it, then cancel to release the rows.",
            )
        return to_review(
            self,
            batch,
            BatchStatus.FAILED,
            f"{checked_by} rejects the wallet address {batch.wallet_address!r} for {batch.payout_currency}: "
            f"{check.message or 'invalid'}; nothing was sent. Fix the client's wallet, then cancel to release "
            "the rows.",
        )

    def finish(self, batch_id: int, state: ExchangeState) -> None:
        """Record what the client received and mark exactly this batch's rows paid out, atomically."""
        with transaction.atomic():
            batch = lock_batch(PayoutBatch, batch_id)
            if batch.status != BatchStatus.EXCHANGING:
                return
            paid = accumulation.mark_paid_out(payout_batch_id=batch.pk)
            if paid != batch.row_count:
                raise RuntimeError(f"payout #{batch.pk}: {paid} rows marked paid out, expected {batch.row_count}")
            transition(
                PAYOUT_MACHINE,
                batch.pk,
                from_status=BatchStatus.EXCHANGING,
                to_status=BatchStatus.COMPLETED,
                reason=f"paid {state.amount_to} {batch.payout_currency} in {state.payout_hash or '-'}",
                updates={
                    "payout_amount": state.amount_to,
                    "payout_tx_hash": state.payout_hash,
                    "completed_at": timezone.now(),
                    "next_action_at": None,
                },
            )
        logger.info(
            "payout #%s completed: %s %s to %s (%s rows)",
            batch_id,
            state.amount_to,
            batch.payout_currency,
            batch.wallet_address,
            batch.row_count,
        )

    def release_rows(self, batch: PayoutBatch) -> int:
        """Threshold payouts give their rows back to the balance; a merged instant payout gives
        its parts back to waiting (to be merged again, never nested)."""
        if batch.kind == PayoutKind.INSTANT_MERGED:
            return unmerge(batch)
        return accumulation.release_from_payout(payout_batch_id=batch.pk)

    def can_release(self, batch: PayoutBatch) -> bool:
        return batch.kind in (PayoutKind.THRESHOLD, PayoutKind.INSTANT_MERGED)

    def waits_below_minimum(self, batch: PayoutBatch) -> bool:
        return batch.kind == PayoutKind.INSTANT


PAYOUT_FLOW = PayoutFlow()


def unmerge(merged: PayoutBatch) -> int:
    """The parts of a merged payout that sent nothing go back to waiting below the minimum.
    The caller holds the merged payout's lock."""
    parts = PayoutBatch.objects.filter(merged_into=merged, status=BatchStatus.MERGED).values_list("id", flat=True)
    returned = 0
    for part_id in list(parts):
        returned += transition(
            PAYOUT_MACHINE,
            part_id,
            from_status=BatchStatus.MERGED,
            to_status=BatchStatus.WAITING_MINIMUM,
            action="unmerge",
            reason=f"payout #{merged.pk} it was merged into sent nothing and was cancelled: waiting again",
            updates={"merged_into": None, "review_reason": "below the exchange minimum; waiting to be merged"},
        )
    return returned


# --- threshold strategy: the Beat job ------------------------------------------------------------


def check_client_payouts() -> list[int]:
    """Open one payout batch for each active threshold client whose converted, unclaimed credit
    reached the client's threshold and the exchange's minimum; return the new batch ids. Over
    the exchange's maximum the payout is capped: it takes the client's oldest rows that fit, and
    the rest go in the next one."""
    balances = unclaimed_credit_by_client()
    clients = Client.objects.in_bulk(list(balances))
    eligible: list[tuple[Client, AmountRange]] = []
    for client_id, credit in balances.items():
        client = clients[client_id]
        limits = _exchange_range(client) if credit >= client.payout_threshold_usd else None
        if limits is not None and _meets_exchange_minimum(client, credit, limits):
            eligible.append((client, limits))
    created: list[int] = []
    with transaction.atomic():
        if not try_advisory_xact_lock(CHECK_CLIENT_PAYOUTS_TASK):
            return created
        approval_limit = get_runtime_settings().payout_approval_limit_usdt
        for client, limits in eligible:
            try:
                with transaction.atomic():  # a savepoint per client: one failure spoils no other
                    batch, over_maximum = _claim_client_rows(client, approval_limit, limits)
                # After the savepoint, which a claim of nothing rolls back: the throttle must stick.
                _alert_rows_over_maximum(client, over_maximum, limits)
            except DatabaseError:
                alert(PAYOUT_CLAIM_FAILED, Subject("client", client.pk), exc_info=True, client=client.external_id)
                continue
            if batch is not None:
                created.append(batch.pk)
                if batch.status == BatchStatus.CREATED:
                    schedule_step(PayoutBatch, batch.pk, ADVANCE_PAYOUT_TASK, 0)
    return created


def _exchange_range(client: Client) -> AmountRange | None:
    """The exchange's range for the client's payout pair; None (trying next run) if unknown."""
    pair = payout_pair(PayoutKind.THRESHOLD, client.payout_currency, client.payout_network)
    try:
        return routing.amount_range(pair)
    except ExchangeError as exc:
        logger.warning("client %s: exchange range unavailable (%s); trying next run", client.external_id, exc)
        return None


def _meets_exchange_minimum(client: Client, credit: Decimal, limits: AmountRange) -> bool:
    """Below the exchange's minimum for the pair the credit simply waits for more (not an error)."""
    if credit < limits.minimum:
        logger.info(
            "client %s: %s USDT is under the exchange minimum %s; waiting", client.external_id, credit, limits.minimum
        )
        return False
    return True


def _claim_client_rows(client: Client, approval_limit: Decimal, limits: AmountRange) -> tuple[PayoutBatch | None, int]:
    """One statement claims this client's converted, unclaimed rows (the oldest that fit under
    the exchange's maximum); the batch's total is the sum of exactly the claimed rows' credit.
    Also returns how many rows are alone over the maximum (never claimed)."""
    pair = payout_pair(PayoutKind.THRESHOLD, client.payout_currency, client.payout_network)
    # Placeholder amounts satisfy the constraints until the claimed rows' sums replace them.
    batch = PayoutBatch.objects.create(
        kind=PayoutKind.THRESHOLD,
        client=client,
        exchange_provider=provider_before_quotes(pair),
        wallet_address=client.wallet_address,
        payout_extra_id=client.payout_extra_id,
        payout_currency=client.payout_currency,
        payout_network=client.payout_network,
        source_currency=source_asset(PayoutKind.THRESHOLD, client.payout_currency, client.payout_network).ticker,
        total_usdt=Decimal(1),
        source_amount=Decimal(1),
        row_count=1,
    )
    claimed = accumulation.claim_for_payout(
        client_id=client.pk, payout_batch_id=batch.pk, credit_at_most=limits.maximum
    )
    # Eligibility was judged before the lock; what was claimed under it is what counts. A capped
    # claim is part of a balance over the threshold: it need only pass the exchange's minimum.
    if not claimed.rows or claimed.credit_usdt < (limits.minimum if claimed.capped else client.payout_threshold_usd):
        transaction.set_rollback(True)
        return None, claimed.rows_over_maximum
    batch.total_usdt = batch.source_amount = claimed.credit_usdt
    batch.row_count = claimed.rows
    batch.status = BatchStatus.AWAITING_APPROVAL if claimed.credit_usdt > approval_limit else BatchStatus.CREATED
    batch.deadline_at = timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS)
    batch.save()
    record_created(
        PAYOUT_MACHINE.subject,
        batch.pk,
        batch.status,
        reason=f"{claimed.rows} rows, " + format_amount(batch.total_usdt, "USDT"),
    )
    logger.info(
        "payout #%s for client %s: %s USDT, %s rows, %s",
        batch.pk,
        client.external_id,
        batch.total_usdt,
        batch.row_count,
        batch.status,
    )
    return batch, claimed.rows_over_maximum


def _alert_rows_over_maximum(client: Client, rows: int, limits: AmountRange) -> None:
    """A row whose credit alone is over the exchange's maximum can never be paid out as it is:
    it waits for a person, alerted on a throttle per client (one client's wait silences no other's)."""
    if rows:
        alert(
            PAYOUT_WAITING,
            Subject("client", client.pk),
            client=client.external_id,
            rows=rows,
            each_over_maximum_usdt=limits.maximum,
        )


# --- instant strategy ------------------------------------------------------------------------------


def measure_value_sent(batch: PayoutBatch) -> PayoutBatch:
    """An instant payout is approved by what it sends, not by what was invoiced (a 30 USD invoice
    can come with a 970 ETH outcome): before its exchange, the ETH it sends is quoted in USDT,
    recorded, and above the approval limit the payout waits for a person. Once per payout."""
    if batch.kind == PayoutKind.THRESHOLD or batch.status != BatchStatus.CREATED or batch.sent_value_usdt is not None:
        return batch
    try:
        value, source = quoted_usdt_value(batch.source_amount)
    except ExchangeRefused:
        return batch  # e.g. below the minimum: the exchange step meets the same refusal and decides
    limit = get_runtime_settings().payout_approval_limit_usdt
    if value > limit:
        return move(
            PAYOUT_FLOW,
            batch,
            BatchStatus.AWAITING_APPROVAL,
            reason=f"sends {batch.source_amount} ETH, worth {value} USDT by {source}'s quote: above the approval "
            f"limit of {limit} USDT",
            updates={"sent_value_usdt": value},
        )
    PayoutBatch.objects.filter(pk=batch.pk, status=BatchStatus.CREATED).update(sent_value_usdt=value)
    batch.refresh_from_db()
    return batch


def open_instant_payout(payment: Payment, client: Client, fee_percent: Decimal) -> PayoutBatch:
    """One payout per finished instant payment (unique on the payment): the fee is deducted from
    the ETH first and recorded; the rest is exchanged to the client's currency. Runs inside the
    intake transaction; the chain starts after commit."""
    fee = percent_of(payment.outcome_amount, fee_percent, ETH_QUANTUM)
    # Measured by the larger of the invoice and what the ETH sent is worth at the reference price
    # (when fresh); the flow measures it again by a quote for exactly this amount before sending.
    worth = reference_value_usd(ETH, payment.outcome_amount - fee) or Decimal(0)
    needs_approval = max(payment.price_to_credit, worth) > get_runtime_settings().payout_approval_limit_usdt
    pair = payout_pair(PayoutKind.INSTANT, client.payout_currency, client.payout_network)
    batch, created = PayoutBatch.objects.get_or_create(
        payment=payment,
        defaults={
            "kind": PayoutKind.INSTANT,
            "client": client,
            "exchange_provider": provider_before_quotes(pair),
            "wallet_address": client.wallet_address,
            "payout_extra_id": client.payout_extra_id,
            "payout_currency": client.payout_currency,
            "payout_network": client.payout_network,
            "source_currency": ETH.ticker,
            "source_amount": payment.outcome_amount - fee,
            "fee_amount": fee,
            "status": BatchStatus.AWAITING_APPROVAL if needs_approval else BatchStatus.CREATED,
            "deadline_at": timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS),
        },
    )
    if created:
        record_created(
            PAYOUT_MACHINE.subject, batch.pk, batch.status, reason=f"instant payment #{payment.provider_payment_id}"
        )
        if batch.status == BatchStatus.CREATED:
            schedule_step(PayoutBatch, batch.pk, ADVANCE_PAYOUT_TASK, 0)
    return batch
