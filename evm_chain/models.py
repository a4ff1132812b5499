"""What the EVM chain adapter keeps: the nonce row of each sending address on each chain, and
each host payment's nonce and EIP-1559 fees. No other chain family has these. The tables keep
their names from when they lived in the payouts app."""

from django.db import models
from django.db.models import Q


class EvmSender(models.Model):
    """One row per sending address per chain: the next nonce to use, handed out only under this
    row's lock, so concurrent signers can never pick the same nonce. One key on two chains has
    two nonce sequences."""

    chain = models.CharField(max_length=20, help_text="The PGP_CHAINS entry this address sends on.")
    address = models.CharField(max_length=42)
    next_nonce = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "evm_senders"
        constraints = [
            models.UniqueConstraint(fields=["chain", "address"], name="evm_sender_unique_chain_address"),
            models.CheckConstraint(condition=Q(next_nonce__gte=0), name="evm_sender_nonce_nonneg"),
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.chain} (next nonce {self.next_nonce})"


class EvmTransfer(models.Model):
    """The EVM side of a signed host payment: its nonce (every candidate shares it) and the
    fees and gas limit of its current candidate."""

    host_payment = models.OneToOneField("payouts.HostPayment", on_delete=models.PROTECT, related_name="evm")
    chain = models.CharField(max_length=20)
    sender = models.CharField(max_length=42)
    nonce = models.BigIntegerField()
    gas_limit = models.BigIntegerField()
    max_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)
    max_priority_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)

    class Meta:
        db_table = "evm_transfers"
        constraints = [
            # No two host payments may ever share a nonce from the same wallet on one chain.
            models.UniqueConstraint(fields=["chain", "sender", "nonce"], name="evm_transfer_unique_sender_nonce"),
            models.CheckConstraint(condition=Q(nonce__gte=0, gas_limit__gt=0), name="evm_transfer_nonce_and_gas"),
        ]

    def __str__(self) -> str:
        return f"nonce {self.nonce} from {self.sender}"
