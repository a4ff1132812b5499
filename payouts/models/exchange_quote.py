"""Every quote a batch was given, per round of quoting (a re-quote is a new round): which
provider offered what, with what fixed rate and until when, who refused or was skipped and why,
and which quote the batch went with. The console shows what the choice saved against the
runner-up from these rows."""

from django.db import models
from django.utils import timezone

from pgp_project.money import eth_field


class ExchangeQuote(models.Model):
    batch_kind = models.CharField(max_length=20, help_text='The batch kind: "conversion" or "payout".')
    batch_id = models.BigIntegerField()
    round = models.PositiveIntegerField(help_text="1 for the batch's first quotes; each re-quote adds one.")
    provider = models.CharField(max_length=32)
    pair = models.CharField(max_length=64, help_text='Registry asset ids: "eth-eth->usdt-eth".')
    from_amount = eth_field()
    to_amount = eth_field(null=True, blank=True, help_text="What the payee would receive, net of the provider's fees.")
    rate_id = models.CharField(max_length=256, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)
    problem = models.TextField(blank=True, help_text="Why there is no quote, or why creating with it failed.")
    chosen = models.BooleanField(default=False, help_text="The batch's exchange was created with this quote.")
    quoted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["batch_kind", "batch_id", "round", "-to_amount"]
        indexes = [models.Index(fields=["batch_kind", "batch_id", "round"], name="exchange_quote_batch_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["batch_kind", "batch_id", "round", "provider"], name="exchange_quote_one_per_provider"
            ),
            models.CheckConstraint(
                condition=models.Q(to_amount__isnull=False) | ~models.Q(problem=""), name="exchange_quote_or_why_not"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.batch_kind} #{self.batch_id} round {self.round}: {self.provider} {self.to_amount or self.problem}"
        )
