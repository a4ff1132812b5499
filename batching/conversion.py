"""Micro-batch conversion: claim the pending ETH rows, exchange ETH -> USDT once, distribute.

The chain is the shared exchange-funded one (payouts/exchange_batches); this module says what is
particular to conversions: which rows are claimed, that the USDT comes back to the hot wallet,
and that finishing means distributing it exactly over the rows.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.assets import ETH, USDT_ERC20, Asset
from integrations.exchange import routing
from integrations.exchange.port import AmountRange, ExchangeError, ExchangePair, ExchangeState
from integrations.exchange.registry import provider_before_quotes
from payments import accumulation
from payouts.exchange_batches.flow import ExchangeFundedFlow, PayoutNotSeenYet
from payouts.host_payments.ports import chain_adapter
from pgp_project.money import USDT_QUANTUM
from pgp_project.money_display import format_amount
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.locks import try_advisory_xact_lock
from pgp_project.operations.scheduling import schedule_step
from pgp_project.operations.selectors import get_runtime_settings
from pgp_project.operations.state_machine import record_created

from .alerts import CONVERSION_WAITING
from .distribution import distribute_conversion
from .models import CONVERSION_MACHINE, BatchConversion

logger = logging.getLogger(__name__)

ADVANCE_CONVERSION_TASK = "batching.advance_conversion"
CHECK_THRESHOLD_TASK = "batching.check_threshold"
# ETH on Ethereum -> USDT ERC-20, paid to the hot wallet, which later funds the client payouts.
CONVERSION_PAIR = ExchangePair(ETH, USDT_ERC20)


class ConversionFlow(ExchangeFundedFlow):
    machine = CONVERSION_MACHINE
    advance_task = ADVANCE_CONVERSION_TASK

    def pair(self, batch: BatchConversion) -> ExchangePair:
        return CONVERSION_PAIR

    def host_asset(self, batch: BatchConversion) -> Asset:
        return ETH

    def send_amount(self, batch: BatchConversion) -> Decimal:
        return batch.total_eth

    def payout_address(self, batch: BatchConversion) -> str:
        return chain_adapter(USDT_ERC20.chain).hot_wallet_address()

    def payout_problem(self, batch: BatchConversion, state: ExchangeState) -> str | None:
        """The USDT comes to our own hot wallet, so the chain can prove what arrived: the payout
        transaction must be mined, succeeded, and have moved exactly amountTo (at USDT's 6
        decimals) into the wallet the exchange pays. That is the hot wallet's address when the
        exchange was created, a previous key's if the key was rotated since, so any address of
        ours counts, and only ours. Only then is it distributed."""
        assert state.amount_to is not None
        if not state.payout_hash:
            return "it names no payout transaction (payoutHash), so the chain cannot prove what it paid"
        chain = chain_adapter(USDT_ERC20.chain)
        wallet = state.payout_address or self.payout_address(batch)
        if wallet.lower() not in {address.lower() for address in chain.wallet_addresses()}:
            return f"it pays out to {wallet}, which is none of our hot wallet's addresses"
        arrived = chain.received(state.payout_hash, wallet, USDT_ERC20.symbol)
        if arrived is None:
            raise PayoutNotSeenYet(
                f"its payout {state.payout_hash} is not mined and succeeded on our node yet "
                f"(amountTo {state.amount_to} USDT)"
            )
        if arrived != _usdt(state.amount_to):
            return (
                f"it reports amountTo {state.amount_to} USDT while its payout {state.payout_hash} moved "
                f"{arrived} USDT into our wallet {wallet}"
            )
        return None

    def finish(self, batch_id: int, state: ExchangeState) -> None:
        assert state.amount_to is not None
        received = _usdt(state.amount_to)
        if received != state.amount_to:
            logger.warning("conversion #%s: amountTo %s rounded down to %s", batch_id, state.amount_to, received)
        distribute_conversion(batch_id, received, state.payout_hash)

    def release_rows(self, batch: BatchConversion) -> int:
        return accumulation.release_from_conversion(conversion_id=batch.pk)


CONVERSION_FLOW = ConversionFlow()


def _usdt(amount: Decimal) -> Decimal:
    """USDT has 6 decimals on chain; a finer figure from the API cannot have arrived as such."""
    return amount.quantize(USDT_QUANTUM, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class ThresholdCheck:
    pending_net_usd: Decimal
    threshold_usd: Decimal
    conversion_id: int | None
    skipped_locked: bool = False
    waiting_for: str = ""  # why nothing was claimed although the threshold was passed


def check_threshold() -> ThresholdCheck:
    """Beat job body: if pending net USD reached the threshold (and the ETH the exchange's
    minimum), claim the pending ETH rows into one new conversion and enqueue its first step
    after commit. Over the exchange's maximum the conversion is capped: it takes the oldest rows
    that fit, and the rest wait for the next check."""
    threshold = get_runtime_settings().micro_batch_threshold_usd
    # Asked before the transaction (no lock held over a call to the exchange); a range that is
    # unknown claims nothing this run.
    limits = _exchange_range()
    with transaction.atomic():
        if not try_advisory_xact_lock(CHECK_THRESHOLD_TASK):
            return ThresholdCheck(Decimal(0), threshold, None, skipped_locked=True)
        claim = accumulation.claim_for_conversion_when_due(
            net_usd_at_least=threshold,
            eth_at_least=limits.minimum,
            eth_at_most=limits.maximum,
            conversion_table=BatchConversion._meta.db_table,
        )
        over_maximum = limits.over_maximum(claim.rows_over_maximum)
        if claim.conversion_id is None or not claim.claimed.rows:
            waiting_for = ""
            if claim.pending_rows and claim.pending_net_usd >= threshold:
                waiting_for = "; ".join(filter(None, [limits.refuses(claim.fitting_eth), over_maximum]))
            return _waiting(ThresholdCheck(claim.pending_net_usd, threshold, None, waiting_for=waiting_for))
        conversion = _create_conversion(claim.conversion_id, threshold, claim.claimed)
        schedule_step(BatchConversion, conversion.pk, ADVANCE_CONVERSION_TASK, 0)
    _log_created(conversion)
    # Rows that can never fit one exchange wait for a person even while the others convert.
    _waiting(ThresholdCheck(claim.pending_net_usd, threshold, conversion.pk, waiting_for=over_maximum))
    return ThresholdCheck(conversion.total_net_usd, threshold, conversion.pk)


def _waiting(check: ThresholdCheck) -> ThresholdCheck:
    """Rows past the threshold that cannot be claimed (under the exchange's minimum, or its
    minimum unknown) wait with no deadline of their own: alerted, on a throttle."""
    if check.waiting_for:
        # One subject, the threshold check: the pending rows wait as one, whatever they are.
        alert(
            CONVERSION_WAITING,
            Subject("job", CHECK_THRESHOLD_TASK),
            pending_usd=check.pending_net_usd,
            threshold_usd=check.threshold_usd,
            waiting_for=check.waiting_for,
        )
    return check


def _log_created(conversion: BatchConversion) -> None:
    logger.info(
        "conversion #%s created: %s rows, %s ETH, net %s USD",
        conversion.pk,
        conversion.row_count,
        conversion.total_eth,
        conversion.total_net_usd,
    )


@dataclass(frozen=True)
class _Range:
    """The best of the providers' ranges for the pair, or no minimum and why it is unknown. Never
    claim what every provider would refuse: under the lowest minimum the rows wait for more (an
    unknown range waits for the next run); over the highest maximum the conversion takes only
    what fits."""

    minimum: Decimal | None
    maximum: Decimal | None
    unknown_because: str = ""

    def refuses(self, eth: Decimal) -> str:
        """Why `eth` (what fits under the maximum) cannot be claimed now ("" if it can)."""
        if self.minimum is None:
            return self.unknown_because
        if eth < self.minimum:
            return f"{eth} ETH pending is under the providers' lowest minimum {self.minimum}"
        return ""

    def over_maximum(self, rows: int) -> str:
        if not rows:
            return ""
        return (
            f"{rows} pending row(s) each over the providers' highest maximum {self.maximum} ETH for one exchange "
            "can never be converted as they are"
        )


def _exchange_range() -> _Range:
    try:
        limits: AmountRange = routing.amount_range(CONVERSION_PAIR)
    except ExchangeError as exc:
        return _Range(None, None, f"the exchanges' range is unavailable ({exc})")
    return _Range(limits.minimum, limits.maximum)


def _create_conversion(
    conversion_id: int, threshold: Decimal, claimed: accumulation.ClaimedForConversion
) -> BatchConversion:
    """The conversion the claimed rows already name, with their totals."""
    conversion = BatchConversion.objects.create(
        pk=conversion_id,
        exchange_provider=provider_before_quotes(CONVERSION_PAIR),
        threshold_usd=threshold,
        total_gross_usd=claimed.gross_usd,
        total_net_usd=claimed.net_usd,
        total_eth=claimed.eth,
        row_count=claimed.rows,
        deadline_at=timezone.now() + timedelta(seconds=settings.PGP_BATCH_DEADLINE_SECONDS),
    )
    _record_created(conversion, claimed)
    return conversion


def _record_created(conversion: BatchConversion, claimed: accumulation.ClaimedForConversion) -> None:
    record_created(
        CONVERSION_MACHINE.subject,
        conversion.pk,
        conversion.status,
        reason=f"{claimed.rows} rows, " + format_amount(claimed.eth, "ETH"),
    )
