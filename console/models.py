"""What the console keeps of its own: nothing of the money, only a cache of what the chain said
last (the hot wallet's balances and the gas price), so the overview never waits for a node."""

from django.db import models


class HotWalletSnapshot(models.Model):
    """The hot wallet's balances and the network's gas price as a periodic job last read them,
    one row per chain. The overview shows it with its age; a node that is down leaves the last
    good values in place and records why the refresh failed."""

    chain = models.CharField(max_length=20, unique=True, help_text="The chain read (a PGP_CHAIN_ADAPTERS key).")
    address = models.CharField(max_length=128, blank=True)
    native_base_units = models.DecimalField(
        max_digits=78, decimal_places=0, null=True, blank=True, help_text="ETH balance, in wei."
    )
    usdt_base_units = models.DecimalField(
        max_digits=78, decimal_places=0, null=True, blank=True, help_text="USDT balance, in 10^-6 USDT."
    )
    gas_price_wei = models.DecimalField(max_digits=78, decimal_places=0, null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True, help_text="When these values were read.")
    attempted_at = models.DateTimeField(null=True, blank=True, help_text="The last refresh, successful or not.")
    last_error = models.TextField(blank=True, help_text="Why the last refresh failed; empty when it succeeded.")

    class Meta:
        ordering = ["chain"]

    def __str__(self) -> str:
        return f"hot wallet on {self.chain}"
