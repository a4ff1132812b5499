"""Exact distribution of a conversion's USDT over its rows (DESIGN.md "Money").

The USDT actually received is split in proportion to the ETH each row contributed, by the
largest-remainder method in 10^-6 USDT units, so the parts sum to the total exactly; each part
is then split into the platform fee (the row's fee % snapshot, half-up at 6 dp) and the
client's credit. sum(credit) + sum(fee) == amountTo holds by construction and is checked again
in the database before the transaction commits.

The rows are streamed in the table's order, `PGP_DISTRIBUTION_CHUNK_ROWS` at a time,
from a server-side cursor; each row's floor share and remainder are computed with integers (base-unit
weights, 10^-6 USDT units) and COPYed into a scratch table, while a fixed-size histogram of the
remainders is kept. The leftover units go to the largest remainders (ties to the earlier row, as
`largest_remainder_split`): the histogram says which narrow band of remainders holds the last row
to get one, the database sorts that band only, and one UPDATE ... FROM writes every row, those at
or above the cut with one unit more. Memory stays bounded by a chunk whatever the batch size, and
nothing sorts the whole batch. `largest_remainder_split` is the reference rule, computed in
memory: the tests hold the streamed distribution to it.
"""

import logging
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from payments import accumulation
from payments.selectors import conversion_credits, distribution_weights
from payouts.exchange_batches.states import BatchStatus
from payouts.locking import lock_batch
from pgp_project.money import ETH_PLACES, USDT_PLACES, to_base_units
from pgp_project.operations.state_machine import transition

from .models import CONVERSION_MACHINE, BatchConversion

logger = logging.getLogger(__name__)


class DistributionError(Exception):
    """The rows do not add up to what the conversion says: nothing was written."""


def largest_remainder_split(total_units: int, weights: list[int]) -> list[int]:
    """Split `total_units` in proportion to `weights` into integers that sum to it exactly.

    Each part is floor(total * w / W), plus one unit for the rows with the largest remainders
    (ties to the earlier row), so every part is within one unit of its exact share.
    """
    if total_units < 0:
        raise ValueError("total must not be negative")
    weight_sum = sum(weights)
    if weight_sum <= 0 or any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative with a positive sum")
    floors_and_remainders = [divmod(total_units * w, weight_sum) for w in weights]
    parts = [floor for floor, _ in floors_and_remainders]
    leftover = total_units - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-floors_and_remainders[i][1], i))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    return parts


@dataclass(frozen=True)
class DistributionTotals:
    usdt: Decimal
    fee: Decimal
    credit: Decimal
    rows: int


def distribute_conversion(conversion_id: int, amount_to: Decimal, payout_hash: str) -> DistributionTotals | None:
    """Credit the conversion's rows and complete it, all in one transaction; None if another
    run already did (the conversion is no longer `exchanging`)."""
    with transaction.atomic():
        conversion = lock_batch(BatchConversion, conversion_id)
        if conversion.status != BatchStatus.EXCHANGING:
            return None
        credited = _credit_streamed(conversion, amount_to)
        if credited != conversion.row_count:
            raise DistributionError(f"updated {credited} rows of {conversion.row_count}")
        # The invariant, checked on what the database now holds, before anything commits.
        held = conversion_credits(conversion.pk)
        if held.rows != conversion.row_count or held.credit + held.fee != amount_to or held.usdt != amount_to:
            raise DistributionError(
                f"conversion #{conversion.pk}: credit {held.credit} + fee {held.fee} != received {amount_to}"
            )
        transition(
            CONVERSION_MACHINE,
            conversion.pk,
            from_status=BatchStatus.EXCHANGING,
            to_status=BatchStatus.COMPLETED,
            reason=f"{amount_to} USDT received and distributed over {held.rows} rows",
            updates={
                "received_usdt": amount_to,
                "fee_usdt_total": held.fee,
                "credit_usdt_total": held.credit,
                "payout_tx_hash": payout_hash,
                "completed_at": timezone.now(),
                "next_action_at": None,
            },
        )
    logger.info(
        "conversion #%s completed: %s USDT received, %s credited to clients, %s fee, %s rows",
        conversion_id,
        amount_to,
        held.credit,
        held.fee,
        held.rows,
    )
    return DistributionTotals(usdt=held.usdt, fee=held.fee, credit=held.credit, rows=held.rows)


# Remainders are counted in this many equal bands of [0, weight sum): the band of the cut then
# holds about rows / REMAINDER_BANDS rows (all of them if every weight is equal, which is correct,
# only slower). 2^16 counters: 512 KB whatever the batch size.
REMAINDER_BAND_BITS = 16


class _ShareTally:
    """Turns (row id, weight) chunks into (row id, floor units, remainder) chunks, one chunk in
    memory at a time, and keeps the sums the caller checks once the stream is consumed, and how
    many remainders fell in each band (to find the cut of the leftover units without a sort)."""

    def __init__(self, total_units: int, weight_sum: int) -> None:
        if total_units < 0:
            raise ValueError("total must not be negative")
        if weight_sum <= 0:
            raise ValueError("weights must have a positive sum")
        self.total_units = total_units
        self.weight_sum = weight_sum
        self.rows = 0
        self.weights = 0
        self.floor_units = 0
        self.chunks = 0
        self.bands = array("q", bytes(8 << REMAINDER_BAND_BITS))

    def shares(self, chunks: Iterable[list[tuple[int, int]]]) -> Iterator[list[tuple[int, int, int]]]:
        total, weight_sum, bands = self.total_units, self.weight_sum, self.bands
        for chunk in chunks:
            shares = []
            for row_id, weight in chunk:
                if weight < 0:
                    raise DistributionError(f"row #{row_id} has a negative weight")
                floor, remainder = divmod(total * weight, weight_sum)
                shares.append((row_id, floor, remainder))
                bands[(remainder << REMAINDER_BAND_BITS) // weight_sum] += 1
                self.weights += weight
                self.floor_units += floor
            self.rows += len(chunk)
            self.chunks += 1
            yield shares

    def band_of(self, rank: int) -> tuple[int, int, int]:
        """The band of remainders holding the `rank`-th largest (1-based), as [low, high), and
        how many larger ones come before it in that band (0-based offset)."""
        above = 0
        for band in range(len(self.bands) - 1, -1, -1):
            count = self.bands[band]
            if above + count >= rank:
                # remainder r is in band b iff b * W <= r * 2^bits < (b + 1) * W
                low = -((-band * self.weight_sum) >> REMAINDER_BAND_BITS)
                high = -((-(band + 1) * self.weight_sum) >> REMAINDER_BAND_BITS)
                return low, high, rank - above - 1
            above += count
        raise DistributionError(f"no remainder of rank {rank} among {above} rows")


def _credit_streamed(conversion: BatchConversion, amount_to: Decimal) -> int:
    """Stream, stage through COPY, check the stream added up, find the cut of the
    leftover units, apply in one UPDATE."""
    with connection.cursor() as cursor:
        # For this transaction only (SET LOCAL): the UPDATE's hash join in one batch, so the rows
        # are written in the staged (table) order; and never a nested loop, which the planner may
        # otherwise pick when its statistics still count no row of this conversion (the claim was
        # minutes ago), and which would scan the staged rows once per row.
        cursor.execute(
            "SELECT set_config('work_mem', %s, true), set_config('enable_nestloop', 'off', true)",
            [settings.PGP_DISTRIBUTION_WORK_MEM],
        )
    tally = _ShareTally(to_base_units(amount_to, USDT_PLACES), to_base_units(conversion.total_eth, ETH_PLACES))
    accumulation.stage_conversion_shares(
        tally.shares(distribution_weights(conversion.pk, settings.PGP_DISTRIBUTION_CHUNK_ROWS))
    )
    if tally.rows != conversion.row_count:
        raise DistributionError(f"conversion #{conversion.pk} has {tally.rows} rows, expected {conversion.row_count}")
    if tally.weights != tally.weight_sum:
        raise DistributionError(f"rows' ETH does not add up to conversion #{conversion.pk}'s total")
    extra_units = tally.total_units - tally.floor_units
    if not 0 <= extra_units <= tally.rows:  # cannot happen once the weights add up; never write it
        raise DistributionError(f"conversion #{conversion.pk}: {extra_units} leftover units over {tally.rows} rows")
    if extra_units:
        low, high, offset = tally.band_of(extra_units)
        cut = accumulation.staged_remainder_at(low=low, high=high, offset=offset)
        if cut is None:
            raise DistributionError(f"conversion #{conversion.pk}: the staged remainders do not match the stream")
    else:
        cut = (tally.weight_sum, 0)  # no remainder reaches the weight sum: no row gets a unit more
    logger.debug("conversion #%s: %s rows streamed in %s chunks", conversion.pk, tally.rows, tally.chunks)
    return accumulation.credit_staged_conversion(conversion_id=conversion.pk, cut_remainder=cut[0], cut_id=cut[1])
