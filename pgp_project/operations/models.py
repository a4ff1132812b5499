from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


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


class AuditEvent(models.Model):
    """One row per transition of a state machine and per operator action on it: who (a staff
    user, or the system when `actor` is empty), when, from which status to which, and why.
    The history is data, one event per change, never a text field that grows."""

    subject_type = models.CharField(max_length=40, help_text='The state machine: "conversion", "payout", ...')
    subject_id = models.BigIntegerField()
    action = models.CharField(max_length=40, help_text='"transition", or the operator action taken.')
    from_status = models.CharField(max_length=24, blank=True)
    to_status = models.CharField(max_length=24, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["subject_type", "subject_id", "created_at"], name="audit_subject_time_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(subject_type="") & ~Q(action=""), name="audit_names_subject_and_action")
        ]

    def __str__(self) -> str:
        return f"{self.subject_type} #{self.subject_id}: {self.action} {self.from_status} -> {self.to_status}"

    @property
    def actor_label(self) -> str:
        return str(self.actor) if self.actor_id else "system"
