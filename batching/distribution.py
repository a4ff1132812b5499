"""Exact distribution of a conversion's USDT over its rows (DESIGN.md "Money").

The USDT actually received is split in proportion to the ETH each row contributed, by the
largest-remainder method in 10^-6 USDT units, so the parts sum to the total exactly; each part
is then split into the platform fee (the row's fee % snapshot, half-up at 6 dp) and the
client's credit. sum(credit) + sum(fee) == amountTo holds by construction and is checked again
in the database before the transaction commits.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from payments.models import AccumulationStatus, PayoutAccumulation
from pgp_project.money import ETH_PLACES, USDT_PLACES, USDT_QUANTUM, from_base_units, percent_of, to_base_units

from .models import BatchConversion
from .states import BatchStatus

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
        conversion = BatchConversion.objects.select_for_update().get(pk=conversion_id)
        if conversion.status != BatchStatus.EXCHANGING:
            return None
        rows = list(
            PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk, status=AccumulationStatus.SWAPPING)
            .order_by("id")
            .values_list("id", "source_amount", "fee_percent")
        )
        if len(rows) != conversion.row_count:
            raise DistributionError(
                f"conversion #{conversion.pk} has {len(rows)} rows, expected {conversion.row_count}"
            )
        weights = [to_base_units(eth, ETH_PLACES) for _, eth, _ in rows]
        if sum(weights) != to_base_units(conversion.total_eth, ETH_PLACES):
            raise DistributionError(f"rows' ETH does not add up to conversion #{conversion.pk}'s total")
        parts = largest_remainder_split(to_base_units(amount_to, USDT_PLACES), weights)
        updates = []
        for (row_id, _, fee_percent), units in zip(rows, parts, strict=True):
            usdt = from_base_units(units, USDT_PLACES)
            fee = percent_of(usdt, fee_percent, USDT_QUANTUM)
            updates.append((row_id, usdt, fee, usdt - fee))
        _write_row_credits(conversion.pk, updates)
        totals = PayoutAccumulation.objects.filter(
            batch_conversion_id=conversion.pk, status=AccumulationStatus.CONVERTED
        ).aggregate(rows=Count("id"), usdt=Sum("usdt_amount"), fee=Sum("fee_usdt"), credit=Sum("credit_usdt"))
        result = DistributionTotals(
            usdt=totals["usdt"] or Decimal(0),
            fee=totals["fee"] or Decimal(0),
            credit=totals["credit"] or Decimal(0),
            rows=totals["rows"],
        )
        # The invariant, checked on what the database now holds, before anything commits.
        if result.rows != conversion.row_count or result.credit + result.fee != amount_to or result.usdt != amount_to:
            raise DistributionError(
                f"conversion #{conversion.pk}: credit {result.credit} + fee {result.fee} != received {amount_to}"
            )
        now = timezone.now()
        conversion.status = BatchStatus.COMPLETED
        conversion.received_usdt = amount_to
        conversion.fee_usdt_total = result.fee
        conversion.credit_usdt_total = result.credit
        conversion.payout_tx_hash = payout_hash
        conversion.completed_at = now
        conversion.next_action_at = None
        conversion.save()
    logger.info(
        "conversion #%s completed: %s USDT received, %s credited to clients, %s fee, %s rows",
        conversion_id,
        amount_to,
        result.credit,
        result.fee,
        result.rows,
    )
    return result


def _write_row_credits(conversion_id: int, updates: list[tuple[int, Decimal, Decimal, Decimal]]) -> None:
    """One set-based UPDATE (PostgreSQL: unnest of arrays); only rows still `swapping` in this
    conversion are touched, so a concurrent change shows up as a count mismatch."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        ids, usdt, fee, credit = (list(column) for column in zip(*updates, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE payout_accumulation AS acc
                   SET status = %s, usdt_amount = v.usdt, fee_usdt = v.fee, credit_usdt = v.credit,
                       converted_at = %s, updated_at = %s
                  FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[]) AS v(id, usdt, fee, credit)
                 WHERE acc.id = v.id AND acc.batch_conversion_id = %s AND acc.status = %s
                """,
                [
                    AccumulationStatus.CONVERTED,
                    now,
                    now,
                    ids,
                    usdt,
                    fee,
                    credit,
                    conversion_id,
                    AccumulationStatus.SWAPPING,
                ],
            )
            updated = cursor.rowcount
    else:
        objects = [
            PayoutAccumulation(
                id=row_id,
                status=AccumulationStatus.CONVERTED,
                usdt_amount=u,
                fee_usdt=f,
                credit_usdt=c,
                converted_at=now,
                updated_at=now,
            )
            for row_id, u, f, c in updates
        ]
        PayoutAccumulation.objects.bulk_update(
            objects, ["status", "usdt_amount", "fee_usdt", "credit_usdt", "converted_at", "updated_at"], batch_size=500
        )
        updated = len(objects)
    if updated != len(updates):
        raise DistributionError(f"updated {updated} rows of {len(updates)}")
