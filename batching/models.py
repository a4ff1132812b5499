"""Micro-batch conversions of pending ETH into USDT (one exchange per batch)."""

from django.db import models
from django.db.models import Q

from payouts.exchange_batches.states import BATCH_TRANSITIONS, BatchStatus
from payouts.models import ExchangeFundedBatch
from pgp_project.money import eth_field, usd_field, usdt_field
from pgp_project.money_display import format_amount
from pgp_project.operations.state_machine import StateMachine


class BatchConversion(ExchangeFundedBatch):
    threshold_usd = usd_field(help_text="The micro-batch threshold in force when the batch was created.")
    total_gross_usd = usd_field()
    total_net_usd = usd_field()
    total_eth = eth_field(help_text="Sum of the claimed rows' ETH: exactly what the host payment sends.")
    row_count = models.PositiveIntegerField()
    received_usdt = usdt_field(null=True, blank=True, help_text="What the exchange actually paid (amountTo).")
    fee_usdt_total = usdt_field(null=True, blank=True)
    credit_usdt_total = usdt_field(null=True, blank=True)

    class Meta(ExchangeFundedBatch.Meta):
        db_table = "batch_conversions"
        constraints = [
            *ExchangeFundedBatch.Meta.constraints,
            models.CheckConstraint(
                condition=~Q(
                    status__in=[
                        BatchStatus.AWAITING_APPROVAL,
                        BatchStatus.APPROVED,
                        BatchStatus.WAITING_MINIMUM,
                        BatchStatus.MERGED,
                    ]
                ),
                name="conversion_only_its_statuses",
            ),
            models.CheckConstraint(
                condition=Q(total_eth__gt=0, total_net_usd__gte=0, total_gross_usd__gte=0, row_count__gt=0),
                name="conversion_totals_positive",
            ),
            models.CheckConstraint(
                condition=~Q(status=BatchStatus.COMPLETED)
                | Q(received_usdt__isnull=False, fee_usdt_total__isnull=False, credit_usdt_total__isnull=False),
                name="conversion_completed_has_amounts",
            ),
            models.CheckConstraint(
                condition=Q(received_usdt__isnull=True) | Q(received_usdt__gte=0), name="conversion_received_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"conversion #{self.pk} ({format_amount(self.total_eth, 'ETH')})"


CONVERSION_MACHINE = StateMachine(subject="conversion", model=BatchConversion, transitions=BATCH_TRANSITIONS)
