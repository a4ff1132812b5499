"""What the EVM chain adapter keeps: the nonce row of each sending address, and each host
payment's nonce and EIP-1559 fees. No other chain has these."""

from django.db import models
from django.db.models import Q


class EvmSender(models.Model):
    """One row per sending address: the next nonce to use, handed out only under this row's
    lock, so concurrent signers can never pick the same nonce."""

    address = models.CharField(max_length=42, unique=True)
    next_nonce = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "evm_senders"
        constraints = [models.CheckConstraint(condition=Q(next_nonce__gte=0), name="evm_sender_nonce_nonneg")]

    def __str__(self) -> str:
        return f"{self.address} (next nonce {self.next_nonce})"


class EvmTransfer(models.Model):
    """The EVM side of a signed host payment: its nonce (every candidate shares it) and the
    fees and gas limit of its current candidate."""

    host_payment = models.OneToOneField("payouts.HostPayment", on_delete=models.PROTECT, related_name="evm")
    sender = models.CharField(max_length=42)
    nonce = models.BigIntegerField()
    gas_limit = models.BigIntegerField()
    max_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)
    max_priority_fee_per_gas = models.DecimalField(max_digits=78, decimal_places=0)

    class Meta:
        db_table = "evm_transfers"
        constraints = [
            # No two host payments may ever share a nonce from the same wallet.
            models.UniqueConstraint(fields=["sender", "nonce"], name="evm_transfer_unique_sender_nonce"),
            models.CheckConstraint(condition=Q(nonce__gte=0, gas_limit__gt=0), name="evm_transfer_nonce_and_gas"),
        ]

    def __str__(self) -> str:
        return f"nonce {self.nonce} from {self.sender}"
