from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pgp_project.outbox.models import OutboxEvent

# The event types an endpoint may ask for; "*" asks for all of them.
EVENT_TYPES = (
    "payment.received",
    "payment.held",
    "payment.refunded",
    "payout.created",
    "payout.awaiting_approval",
    "payout.completed",
    "payout.failed",
    "conversion.completed",
    "client.change_confirmed",
)
ALL_EVENTS = "*"


class WebhookEndpoint(models.Model):
    """Where events are delivered: a URL, the event types it wants, and optionally the one client
    whose events it gets. The signing secret (whsec_...) is shown once, when it is created."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    client = models.ForeignKey(
        "payments.Client",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only this client's events (empty: every event, those of no client included).",
    )
    secret = models.CharField(max_length=100, editable=False)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Failing since the first failure after the last success (None: the last attempt succeeded).
    failing_since = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    # Disabled by the sender because it kept failing (not by a person): it waits in the
    # needs-attention queue until someone enables it.
    disabled_for_failures = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        permissions = [("resend_webhook", "Can resend a webhook delivery")]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.url}"

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending (sending or retrying)"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed (retries exhausted)"


class WebhookDelivery(models.Model):
    """One event for one endpoint: unique, so the dispatcher may run twice. Sent at least once:
    an attempt is claimed with a lease (`claimed_until`, a fresh `claim` token) by a
    compare-and-set, so two workers never send the same attempt; a worker killed mid-send leaves
    a lease that expires, and the delivery is sent again."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"),
            models.CheckConstraint(condition=Q(status__in=DeliveryStatus.values), name="webhook_delivery_status_valid"),
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.DELIVERED) | Q(delivered_at__isnull=False),
                name="webhook_delivered_has_time",
            ),
        ]
        indexes = [
            # The sender's queue: pending deliveries by when they are due.
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhook_delivery_due_idx"),
            # The delivery log per endpoint and per event.
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_endpoint_idx"),
            models.Index(fields=["status", "-id"], name="webhook_delivery_status_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery #{self.pk} of {self.event_id} to endpoint #{self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the log an operator reads."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["delivery", "-id"], name="webhook_attempt_delivery_idx")]

    def __str__(self) -> str:
        return f"attempt #{self.pk} of delivery #{self.delivery_id}: {self.status_code or self.error[:40]}"


class WebhookCounter(models.Model):
    """How many attempts ended each way, ever: /metrics exports them as counters. Incremented
    with an upsert, never decremented (attempt rows may be pruned, these never are)."""

    outcome = models.CharField(max_length=20, unique=True)
    total = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.outcome}: {self.total}"
