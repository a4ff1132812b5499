"""What the console keeps of its own: the record of each reconciliation run (it owns no money)."""

from django.db import models
from django.db.models import F, Q


class ReconciliationStatus(models.TextChoices):
    OK = "ok", "ok (no discrepancy)"
    DISCREPANCIES = "discrepancies", "discrepancies"


class ReconciliationRun(models.Model):
    """One comparison of the database with the chain, the exchange's records and its own sums,
    for a time range [range_start, range_end). The summary holds the whole report (amounts as
    strings), so the page shows any past run as it was found."""

    range_start = models.DateTimeField()
    range_end = models.DateTimeField()
    ran_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=16, choices=ReconciliationStatus.choices)
    discrepancy_count = models.PositiveIntegerField(default=0)
    triggered_by = models.CharField(max_length=150, help_text='"beat", "command", or the operator\'s username.')
    summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-ran_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ReconciliationStatus.values), name="recon_status_valid"),
            models.CheckConstraint(condition=Q(range_end__gt=F("range_start")), name="recon_range_not_empty"),
            models.CheckConstraint(
                condition=Q(status=ReconciliationStatus.OK, discrepancy_count=0)
                | Q(status=ReconciliationStatus.DISCREPANCIES, discrepancy_count__gt=0),
                name="recon_status_matches_count",
            ),
        ]

    def __str__(self) -> str:
        span = f"{self.range_start:%Y-%m-%d %H:%M} - {self.range_end:%Y-%m-%d %H:%M}"
        return f"reconciliation #{self.pk} {span} ({self.status})"
