"""Client payout batches and host payments (on-chain sends from the gateway's hot wallet)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from batching.states import STATUSES_WITH_EXCHANGE, BatchStatus
from pgp_project.money import eth_field, usdt_field


class PayoutKind(models.TextChoices):
    THRESHOLD = "threshold", "threshold (accumulated USDT)"
    INSTANT = "instant", "instant (one payment's ETH)"


class PayoutBatch(models.Model):
    """One payout to one client: its converted USDT (or one instant payment's ETH) exchanged
    into the client's currency and sent to the client's wallet by ChangeNOW."""

    kind = models.CharField(max_length=12, choices=PayoutKind.choices, default=PayoutKind.THRESHOLD)
    client = models.ForeignKey("payments.Client", on_delete=models.PROTECT, related_name="payout_batches")
    payment = models.OneToOneField(
        "payments.Payment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="instant_payout",
        help_text="The payment an instant payout pays out (one payout per payment).",
    )
    status = models.CharField(max_length=20, choices=BatchStatus.choices, default=BatchStatus.CREATED)
    wallet_address = models.CharField(max_length=128)
    payout_currency = models.CharField(max_length=10)
    payout_network = models.CharField(max_length=20)
    source_currency = models.CharField(max_length=12, help_text="What we send: usdterc20 or eth.")
    total_usdt = usdt_field(null=True, blank=True, help_text="Sum of the claimed rows' credit (threshold).")
    source_amount = eth_field(help_text="Exactly what the host payment sends to the exchange.")
    fee_amount = eth_field(default=0, help_text="Fee retained before the exchange (instant payouts).")
    row_count = models.PositiveIntegerField(default=0)
    exchange_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    payin_address = models.CharField(max_length=128, blank=True)
    exchange_from_amount = eth_field(null=True, blank=True, help_text="ChangeNOW fromAmount.")
    expected_amount = eth_field(null=True, blank=True, help_text="ChangeNOW estimate in the client currency.")
    payout_amount = eth_field(null=True, blank=True, help_text="amountTo the client actually received.")
    exchange_status = models.CharField(max_length=20, blank=True)
    abandoned_exchange_ids = models.JSONField(
        default=list, blank=True, help_text="Exchanges created after an ambiguous failure and never funded."
    )
    payout_tx_hash = models.CharField(max_length=128, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    review_reason = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "payout_batches"
        ordering = ["-created_at"]
        verbose_name_plural = "payout batches"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="payout_status_valid"),
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
                condition=~Q(status__in=STATUSES_WITH_EXCHANGE) | Q(exchange_id__isnull=False),
                name="payout_exchange_id_when_created",
            ),
            models.CheckConstraint(
                condition=~Q(status=BatchStatus.APPROVED) | Q(approved_by__isnull=False, approved_at__isnull=False),
                name="payout_approved_has_approver",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[BatchStatus.FAILED, BatchStatus.REFUNDED]) | ~Q(review_reason=""),
                name="payout_review_has_reason",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_action_at"],
                condition=~Q(status__in=["completed", "cancelled", "failed", "refunded"]),
                name="payout_open_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"payout #{self.pk} to {self.client_id} ({self.status})"


class HostPaymentStatus(models.TextChoices):
    CREATED = "created"
    SIGNED = "signed", "signed (nonce, raw tx and hash committed)"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FAILED = "failed", "failed (review)"


class HostAsset(models.TextChoices):
    ETH = "eth", "ETH (native)"
    USDT = "usdt", "USDT (ERC-20 transfer)"


class HostPayment(models.Model):
    """The single on-chain payment from the hot wallet that funds one batch's exchange."""

    conversion = models.OneToOneField(
        "batching.BatchConversion", null=True, blank=True, on_delete=models.PROTECT, related_name="host_payment"
    )
    payout_batch = models.OneToOneField(
        PayoutBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="host_payment"
    )
    status = models.CharField(max_length=12, choices=HostPaymentStatus.choices, default=HostPaymentStatus.CREATED)
    asset = models.CharField(max_length=8, choices=HostAsset.choices)
    amount = eth_field(help_text="In the asset's own unit (ETH or USDT).")
    amount_base_units = models.DecimalField(max_digits=78, decimal_places=0, help_text="wei or 10^-6 USDT")
    from_address = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)
    nonce = models.BigIntegerField(null=True, blank=True)
    raw_transaction = models.TextField(blank=True, help_text="Signed bytes, hex; re-broadcast as is.")
    tx_hash = models.CharField(max_length=66, null=True, blank=True, unique=True)
    max_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    max_priority_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    gas_limit = models.BigIntegerField(null=True, blank=True)
    confirmations = models.PositiveIntegerField(default=0)
    block_number = models.BigIntegerField(null=True, blank=True)
    gas_used = models.BigIntegerField(null=True, blank=True)
    fee_wei = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    last_error = models.TextField(blank=True)
    balance_alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the hot wallet was last found short for this payment (alert once)."
    )
    attempts = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=HostPaymentStatus.values), name="host_payment_status_valid"),
            models.CheckConstraint(condition=Q(asset__in=HostAsset.values), name="host_payment_asset_valid"),
            models.CheckConstraint(
                condition=Q(conversion__isnull=False, payout_batch__isnull=True)
                | Q(conversion__isnull=True, payout_batch__isnull=False),
                name="host_payment_exactly_one_batch",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0, amount_base_units__gt=0), name="host_payment_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(status=HostPaymentStatus.CREATED)
                | Q(status=HostPaymentStatus.FAILED)
                | (Q(nonce__isnull=False, tx_hash__isnull=False) & ~Q(raw_transaction="")),
                name="host_payment_signed_has_tx",
            ),
            # No two host payments may ever share a nonce from the same wallet.
            models.UniqueConstraint(fields=["from_address", "nonce"], name="host_payment_unique_wallet_nonce"),
        ]

    def __str__(self) -> str:
        return f"host payment #{self.pk} {self.amount} {self.asset} ({self.status})"


class HotWallet(models.Model):
    """One row per sending address: the next nonce to use, assigned only under this row's lock,
    so concurrent signers can never pick the same nonce."""

    address = models.CharField(max_length=42, unique=True)
    next_nonce = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(next_nonce__gte=0), name="hot_wallet_nonce_nonneg")]

    def __str__(self) -> str:
        return f"{self.address} (next nonce {self.next_nonce})"


class HostPaymentAttempt(models.Model):
    """Every transaction ever signed for a host payment: the first, and each same-nonce
    replacement with higher fees. All hashes are kept; whichever is mined is the payment."""

    host_payment = models.ForeignKey(HostPayment, on_delete=models.PROTECT, related_name="candidate_transactions")
    nonce = models.BigIntegerField()
    tx_hash = models.CharField(max_length=66, unique=True)
    raw_transaction = models.TextField()
    max_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)
    max_priority_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host_payment", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.tx_hash} (nonce {self.nonce})"
