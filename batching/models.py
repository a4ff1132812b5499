"""Micro-batch conversions of pending ETH into USDT (one ChangeNOW exchange per batch)."""

from django.db import models
from django.db.models import Q

from pgp_project.money import eth_field, usd_field, usdt_field

from .states import STATUSES_WITH_EXCHANGE, BatchStatus


class BatchConversion(models.Model):
    status = models.CharField(max_length=20, choices=BatchStatus.choices, default=BatchStatus.CREATED)
    threshold_usd = usd_field(help_text="The micro-batch threshold in force when the batch was created.")
    total_gross_usd = usd_field()
    total_net_usd = usd_field()
    total_eth = eth_field(help_text="Sum of the claimed rows' ETH: exactly what the host payment sends.")
    row_count = models.PositiveIntegerField()
    exchange_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    payin_address = models.CharField(max_length=128, blank=True)
    exchange_from_amount = eth_field(null=True, blank=True, help_text="ChangeNOW fromAmount.")
    expected_usdt = usdt_field(null=True, blank=True, help_text="ChangeNOW's estimate at creation.")
    received_usdt = usdt_field(null=True, blank=True, help_text="amountTo actually received (by-id).")
    fee_usdt_total = usdt_field(null=True, blank=True)
    credit_usdt_total = usdt_field(null=True, blank=True)
    exchange_status = models.CharField(max_length=20, blank=True, help_text="Last ChangeNOW status seen.")
    abandoned_exchange_ids = models.JSONField(
        default=list, blank=True, help_text="Exchanges created after an ambiguous failure and never funded."
    )
    payout_tx_hash = models.CharField(max_length=100, blank=True, help_text="ChangeNOW's payout hash.")
    review_reason = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "batch_conversions"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="conversion_status_valid"),
            models.CheckConstraint(
                condition=~Q(status__in=[BatchStatus.AWAITING_APPROVAL, BatchStatus.APPROVED]),
                name="conversion_needs_no_approval",
            ),
            models.CheckConstraint(
                condition=Q(total_eth__gt=0, total_net_usd__gte=0, total_gross_usd__gte=0, row_count__gt=0),
                name="conversion_totals_positive",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=STATUSES_WITH_EXCHANGE) | Q(exchange_id__isnull=False),
                name="conversion_exchange_id_when_created",
            ),
            models.CheckConstraint(
                condition=~Q(status=BatchStatus.COMPLETED)
                | Q(received_usdt__isnull=False, fee_usdt_total__isnull=False, credit_usdt_total__isnull=False),
                name="conversion_completed_has_amounts",
            ),
            models.CheckConstraint(
                condition=Q(received_usdt__isnull=True) | Q(received_usdt__gte=0), name="conversion_received_nonneg"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[BatchStatus.FAILED, BatchStatus.REFUNDED]) | ~Q(review_reason=""),
                name="conversion_review_has_reason",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_action_at"],
                condition=~Q(status__in=["completed", "cancelled", "failed", "refunded"]),
                name="conversion_open_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"conversion #{self.pk} ({self.status})"
