from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class RuntimeSettings(models.Model):
    """The one row of settings operators change in the admin; read on every use, no restart."""

    SINGLETON_ID = 1

    micro_batch_threshold_usd = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("20.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="A conversion starts once pending net USD reaches this amount.",
    )
    default_fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("3.00"),
        help_text="Platform fee snapshotted on each accumulation row at intake (clients may override).",
    )
    confirmations_required = models.PositiveSmallIntegerField(
        default=3, help_text="Block confirmations before a host payment counts as confirmed."
    )
    payout_approval_limit_usdt = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=Decimal("1000.000000"),
        help_text="Client payouts above this amount wait for a staff approval.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "runtime settings"
        verbose_name_plural = "runtime settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="runtime_settings_singleton"),
            models.CheckConstraint(condition=Q(micro_batch_threshold_usd__gt=0), name="runtime_threshold_positive"),
            models.CheckConstraint(
                condition=Q(default_fee_percent__gte=0, default_fee_percent__lt=100),
                name="runtime_fee_percent_range",
            ),
            models.CheckConstraint(condition=Q(confirmations_required__gte=1), name="runtime_confirmations_positive"),
            models.CheckConstraint(
                condition=Q(payout_approval_limit_usdt__gte=0), name="runtime_approval_limit_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return "Runtime settings"


class JobHeartbeat(models.Model):
    """When each periodic job last ran on a worker; /health/ reads it to judge Beat freshness."""

    job_name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField()
    last_finished_at = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["job_name"]

    def __str__(self) -> str:
        return self.job_name
