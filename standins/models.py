"""What the fixed-price exchange stand-in remembers between calls (the worker and the test
process share it through the database, as they would share a real exchange's API)."""

from django.db import models

from pgp_project.money import eth_field


class FixedPriceExchangeRecord(models.Model):
    id = models.CharField(primary_key=True, max_length=64)
    from_currency = models.CharField(max_length=12)
    from_network = models.CharField(max_length=12)
    to_currency = models.CharField(max_length=12)
    to_network = models.CharField(max_length=12)
    from_amount = eth_field()
    to_amount = eth_field()
    payin_address = models.CharField(max_length=42)
    payout_address = models.CharField(max_length=42)
    status = models.CharField(max_length=20, default="waiting")  # waiting -> sending -> finished | failed
    payout_tx_hash = models.CharField(max_length=66, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"fixed-price exchange {self.id} ({self.status})"
