from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxEvent(models.Model):
    """One thing that happened, written in the transaction that made it happen: committed with
    it, or rolled back with it, so no event is lost or invented when a worker dies.

    `sequence` counts the events of one subject (1, 2, 3...), so a receiver can order what it
    gets for a payout or a payment; the unique constraint is what makes it safe under
    concurrency (record_event retries on a clash). `dispatched_at` is set once the event has been
    turned into deliveries for the endpoints that wanted it."""

    event_id = models.CharField(max_length=40, unique=True, help_text="Stable public id: evt_...")
    type = models.CharField(max_length=40)
    subject_type = models.CharField(max_length=40)
    subject_id = models.BigIntegerField()
    sequence = models.PositiveIntegerField()
    # The client the event concerns, by id: the kernel knows no client model.
    client_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="Money as exact decimal strings.")
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_type", "subject_id", "sequence"], name="outbox_sequence_per_subject"
            ),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="outbox_sequence_from_one"),
            models.CheckConstraint(condition=~Q(type="") & ~Q(subject_type=""), name="outbox_names_type_and_subject"),
        ]
        indexes = [
            # The dispatcher's queue and the metrics' lag: only events not yet dispatched.
            models.Index(fields=["id"], condition=Q(dispatched_at__isnull=True), name="outbox_undispatched_idx"),
            # The admin's one filter (its order is the primary key's). Every index is paid by the
            # IPN intake's write, so there are no others.
            models.Index(fields=["type", "-id"], name="outbox_type_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} {self.subject_type} #{self.subject_id} ({self.sequence})"
