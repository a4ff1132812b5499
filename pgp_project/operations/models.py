from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
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
        # Requesting a change of the limits below, or of a money job's periodic task (enabled,
        # schedule, task, arguments, routing); it applies once a second person confirms it.
        permissions = [
            ("change_runtime_limits", "Can request a change of the runtime money limits"),
            ("change_money_jobs", "Can request disabling, re-timing or redirecting a money job"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="runtime_settings_singleton"),
            models.CheckConstraint(condition=Q(micro_batch_threshold_usd__gt=0), name="runtime_threshold_positive"),
            models.CheckConstraint(
                condition=Q(default_fee_percent__gte=0, default_fee_percent__lt=100),
                name="runtime_fee_percent_range",
            ),
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
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "created_at"], name="audit_subject_time_idx"),
            # The audit list's date filter: events are written in time order.
            BrinIndex(fields=["created_at"], name="audit_created_brin"),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(subject_type="") & ~Q(action=""), name="audit_names_subject_and_action")
        ]

    def __str__(self) -> str:
        return f"{self.subject_type} #{self.subject_id}: {self.action} {self.from_status} -> {self.to_status}"

    @property
    def actor_label(self) -> str:
        return str(self.actor) if self.actor_id else "system"


class PendingChangeStatus(models.TextChoices):
    PENDING = "pending", "pending (awaiting a second staff member)"
    APPLIED = "applied", "applied (confirmed by a second staff member)"
    REJECTED = "rejected", "rejected"
    SUPERSEDED = "superseded", "superseded (a later request replaced it)"
    STALE = "stale", "stale (the value changed since the request, or no longer valid; not applied)"


class PendingChange(models.Model):
    """A requested change of money-control fields (a client's wallet, a fee, a limit) that takes
    effect only once a second staff member confirms it. The subject is named like an audit
    event's (type + id); `changes` maps each field to its old and new value as JSON strings."""

    subject_type = models.CharField(max_length=40)
    subject_id = models.BigIntegerField()
    changes = models.JSONField(help_text='field -> {"old": "...", "new": "..."} (strings, or null)')
    status = models.CharField(max_length=16, choices=PendingChangeStatus.choices, default=PendingChangeStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("confirm_change", "Can confirm another staff member's requested money-control change")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PendingChangeStatus.values), name="pending_change_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=PendingChangeStatus.PENDING, decided_at__isnull=True)
                | (~Q(status=PendingChangeStatus.PENDING) & Q(decided_at__isnull=False)),
                name="pending_change_decided_has_time",
            ),
            # The two-person rule, in the database too: no one applies their own request.
            models.CheckConstraint(
                condition=~Q(status=PendingChangeStatus.APPLIED)
                | (Q(decided_by__isnull=False) & ~Q(decided_by=models.F("requested_by"))),
                name="pending_change_applied_by_a_second_person",
            ),
        ]
        indexes = [
            models.Index(
                fields=["subject_type", "subject_id"], condition=Q(status="pending"), name="pending_change_open_idx"
            )
        ]

    def __str__(self) -> str:
        return f"change #{self.pk} of {self.subject_type} #{self.subject_id} ({self.status})"


class AlertThrottle(models.Model):
    """When an alert was last written about one subject: a lasting condition is written when it
    starts and then at most every PGP_ALERT_REPEAT_SECONDS. One row per (alert, subject), so one
    alert never silences another. Claimed by an upsert (pgp_project.operations.alerts); a row
    older than the interval means the same as no row, so old rows may be pruned."""

    name = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=128)
    last_sent_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "subject_type", "subject_id"], name="alert_throttle_per_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.subject_type}={self.subject_id}"


class AlertCount(models.Model):
    """How many lines of each alert were written, ever: /metrics exports it as the counter
    pgp_alerts_total. Incremented with an upsert, never decremented nor pruned."""

    name = models.CharField(max_length=64, unique=True)
    total = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.total}"


class OutsideServiceHealth(models.Model):
    """How one outside service (an exchange provider, say) has answered: its calls counted by
    outcome and timed, for /metrics (counters: only ever incremented), and its circuit breaker.
    The breaker opens after consecutive failures, so routing skips the service for a cool-down,
    then lets one probe call through; any call that answers closes it
    (pgp_project.operations.circuit_breaker)."""

    name = models.CharField(max_length=64, unique=True)
    calls_ok = models.PositiveBigIntegerField(default=0)
    calls_refused = models.PositiveBigIntegerField(default=0, help_text="Answered, but refused the request.")
    calls_unavailable = models.PositiveBigIntegerField(default=0, help_text="Down, slow, rate-limiting or keyless.")
    calls_bad_response = models.PositiveBigIntegerField(default=0, help_text="Answered what it does not document.")
    call_seconds = models.FloatField(default=0.0, help_text="Time spent in all calls (a duration, not money).")
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True, help_text="When the breaker opened (empty: closed).")
    probe_claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the open breaker let a probe by.")
    last_failure = models.TextField(blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "outside service health"

    def __str__(self) -> str:
        return f"{self.name} ({'open' if self.opened_at else 'closed'})"


class StatusCount(models.Model):
    """Rows by status of a table with a `status` and an `attempts` column (the batches, the host
    payments), and their attempts summed, kept by that table's triggers (status_counts.py) so
    /metrics never counts a large table. The folded totals; the latest changes wait in
    StatusCountChange until the next fold."""

    table_name = models.CharField(max_length=63)
    status = models.CharField(max_length=32)
    rows = models.BigIntegerField(default=0)
    attempts = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["table_name", "status"], name="status_count_table_status_unique")
        ]

    def __str__(self) -> str:
        return f"{self.table_name} {self.status}: {self.rows}"


class StatusCountChange(models.Model):
    """What one statement changed in a counted table's rows by status (inserted by its trigger,
    in its transaction; never updated, so writers never wait on one another), until a fold adds
    it to StatusCount."""

    table_name = models.CharField(max_length=63)
    status = models.CharField(max_length=32)
    rows = models.BigIntegerField()
    attempts = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.table_name} {self.status}: {self.rows:+d}"
