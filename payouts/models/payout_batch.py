"""Client payout batches: one payout to one client, exchanged into the client's currency."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from integrations.assets import unit_symbol
from pgp_project.money import eth_field, usdt_field
from pgp_project.money_display import format_amount
from pgp_project.operations.state_machine import StateMachine

from ..exchange_batches.states import BATCH_TRANSITIONS, BatchStatus
from .exchange_batch import ExchangeFundedBatch


class PayoutKind(models.TextChoices):
    THRESHOLD = "threshold", "threshold (accumulated USDT)"
    INSTANT = "instant", "instant (one payment's ETH)"
    INSTANT_MERGED = "instant_merged", "instant, merged (several payments' ETH, each below the minimum)"


class PayoutBatch(ExchangeFundedBatch):
    """One payout to one client: its converted USDT (or one instant payment's ETH) exchanged
    into the client's currency and sent to the client's wallet."""

    kind = models.CharField(max_length=16, choices=PayoutKind.choices, default=PayoutKind.THRESHOLD)
    client = models.ForeignKey("payments.Client", on_delete=models.PROTECT, related_name="payout_batches")
    payment = models.OneToOneField(
        "payments.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="instant_payout",
        help_text="The payment an instant payout pays out (one payout per payment).",
    )
    wallet_address = models.CharField(max_length=128)
    payout_extra_id = models.CharField(
        max_length=256, blank=True, help_text="The wallet's memo or destination tag, sent as the exchange's extraId."
    )
    payout_currency = models.CharField(max_length=10)
    payout_network = models.CharField(max_length=20)
    source_currency = models.CharField(max_length=12, help_text="What we send: usdterc20 or eth.")
    total_usdt = usdt_field(null=True, blank=True, help_text="Sum of the claimed rows' credit (threshold).")
    source_amount = eth_field(help_text="Exactly what the host payment sends to the exchange.")
    fee_amount = eth_field(default=0, help_text="Fee retained before the exchange (instant payouts).")
    sent_value_usdt = usdt_field(
        null=True,
        blank=True,
        help_text="What an instant payout sends, in USDT by the exchange provider's quote before anything is "
        "sent: the value the approval limit is measured against.",
    )
    row_count = models.PositiveIntegerField(default=0)
    payout_amount = eth_field(null=True, blank=True, help_text="What the client actually received.")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merged_payouts",
        help_text="The payout that pays this one's ETH, with other payouts of the same client.",
    )

    class Meta(ExchangeFundedBatch.Meta):
        db_table = "payout_batches"
        verbose_name_plural = "payout batches"
        # Dedicated money permissions: the generic change_payoutbatch grants neither.
        permissions = [
            ("approve_payout", "Can approve or reject a payout above the approval limit"),
            ("operate_batch", "Can re-drive, cancel, resume and release conversions, payouts and host payments"),
        ]
        indexes = [
            *ExchangeFundedBatch.Meta.indexes,
            models.Index(fields=["wallet_address"], name="payoutbatch_wallet_idx"),  # the console's search
            models.Index(fields=["created_at"], name="payoutbatch_created_idx"),  # the API's newest first
        ]
        constraints = [
            *ExchangeFundedBatch.Meta.constraints,
            models.CheckConstraint(condition=Q(kind__in=PayoutKind.values), name="payout_kind_valid"),
            models.CheckConstraint(condition=Q(source_amount__gt=0, fee_amount__gte=0), name="payout_amounts_positive"),
            models.CheckConstraint(
                condition=~Q(kind=PayoutKind.INSTANT) | Q(payment__isnull=False),
                name="payout_instant_has_payment",
            ),
            models.CheckConstraint(
                condition=~Q(kind=PayoutKind.THRESHOLD) | Q(payment__isnull=True, total_usdt__gt=0, row_count__gt=0),
                name="payout_threshold_has_rows",
            ),
            models.CheckConstraint(
                condition=~Q(status=BatchStatus.APPROVED) | Q(approved_by__isnull=False, approved_at__isnull=False),
                name="payout_approved_has_approver",
            ),
            models.CheckConstraint(
                condition=~Q(kind=PayoutKind.INSTANT_MERGED) | Q(payment__isnull=True, row_count=0),
                name="payout_merged_has_no_payment_or_rows",
            ),
            models.CheckConstraint(
                condition=Q(status=BatchStatus.MERGED, merged_into__isnull=False)
                | (~Q(status=BatchStatus.MERGED) & Q(merged_into__isnull=True)),
                name="payout_merged_names_its_payout",
            ),
        ]

    def __str__(self) -> str:
        return f"payout #{self.pk} to {self.client} ({self.kind}, {self.amount_shown})"

    @property
    def amount_shown(self) -> str:
        """What it pays: the USDT credit of a threshold payout, else what it sends, with its unit."""
        if self.total_usdt is not None:
            return format_amount(self.total_usdt, "USDT")
        return format_amount(self.source_amount, unit_symbol(self.source_currency))


PAYOUT_MACHINE = StateMachine(subject="payout", model=PayoutBatch, transitions=BATCH_TRANSITIONS)
