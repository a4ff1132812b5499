"""What the console keeps of its own (it owns no money): a cache of what the chain said last (the
hot wallet's balances and the fee rate on each chain), so the overview never waits for a node, and the record
of each reconciliation run."""

from django.db import models
from django.db.models import F, Q


class HotWalletSnapshot(models.Model):
    """The hot wallet's balances and the network's fee rate as a periodic job last read them,
    one row per configured chain. The overview shows it with its age; a node that is down leaves the last
    good values in place and records why the refresh failed."""

    chain = models.CharField(max_length=20, unique=True, help_text="The chain read (a PGP_CHAINS key).")
    address = models.CharField(max_length=128, blank=True)
    # Exact decimal strings by asset symbol (JSON has no decimal type; a float would round).
    balances = models.JSONField(default=dict, blank=True, help_text="Balances by asset symbol, as exact decimals.")
    fee_rate = models.DecimalField(
        max_digits=78,
        decimal_places=0,
        null=True,
        blank=True,
        help_text="The network's fee rate, in its adapter's unit.",
    )
    fetched_at = models.DateTimeField(null=True, blank=True, help_text="When these values were read.")
    attempted_at = models.DateTimeField(null=True, blank=True, help_text="The last refresh, successful or not.")
    last_error = models.TextField(blank=True, help_text="Why the last refresh failed; empty when it succeeded.")

    class Meta:
        ordering = ["chain"]

    def __str__(self) -> str:
        return f"hot wallet on {self.chain}"


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
