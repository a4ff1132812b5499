"""Host payments: the on-chain sends from the gateway's hot wallet, whatever the chain."""

from django.db import models
from django.db.models import Q

from pgp_project.money import eth_field
from pgp_project.money_display import format_amount
from pgp_project.operations.state_machine import StateMachine


class HostPaymentStatus(models.TextChoices):
    CREATED = "created"
    SIGNED = "signed", "signed (raw transaction and hash committed)"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FAILED = "failed", "failed (review)"


class HostPaymentWait(models.TextChoices):
    BALANCE = "balance", "hot-wallet balance"
    FEE_CAP = "fee_cap", "network fees under the chain's fee cap"
    SIGNING_KEY = "signing_key", "the key of its sending address"


S = HostPaymentStatus
HOST_PAYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    S.CREATED: frozenset({S.SIGNED}),
    S.SIGNED: frozenset({S.BROADCAST, S.CONFIRMED, S.FAILED}),
    S.BROADCAST: frozenset({S.CONFIRMED, S.FAILED}),
    S.CONFIRMED: frozenset(),
    # An operator's re-verification finds it mined after all (a lagging node had said otherwise).
    S.FAILED: frozenset({S.CONFIRMED}),
}
IN_FLIGHT = (S.SIGNED, S.BROADCAST)


class HostPayment(models.Model):
    """The single on-chain payment from the hot wallet that funds one batch's exchange. The
    batch points at it; `owner_kind` says which kind of batch (a registered flow) that is."""

    owner_kind = models.CharField(max_length=20, help_text='The kind of batch it funds: "conversion", "payout".')
    chain = models.CharField(max_length=20, help_text="The chain it is sent on (a PGP_CHAINS key).")
    asset = models.CharField(max_length=20, help_text="The asset sent, by its code on that chain.")
    status = models.CharField(max_length=12, choices=HostPaymentStatus.choices, default=HostPaymentStatus.CREATED)
    amount = eth_field(help_text="In the asset's own unit.")
    amount_base_units = models.DecimalField(max_digits=78, decimal_places=0, help_text="In the asset's base units.")
    from_address = models.CharField(max_length=128)
    to_address = models.CharField(max_length=128)
    tx_hash = models.CharField(max_length=128, null=True, blank=True, unique=True, help_text="The current candidate.")
    raw_transaction = models.TextField(blank=True, help_text="Signed bytes, hex; re-broadcast as is.")
    confirmations = models.PositiveIntegerField(default=0)
    block_number = models.BigIntegerField(null=True, blank=True)
    network_fee = models.DecimalField(
        max_digits=78, decimal_places=0, null=True, blank=True, help_text="Paid for inclusion, in native base units."
    )
    last_error = models.TextField(blank=True)
    waiting_for = models.CharField(
        max_length=12,
        choices=HostPaymentWait.choices,
        blank=True,
        help_text="What an unsigned payment waits for, if anything: hot-wallet balance, or fees under the cap.",
    )
    attempts = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(
        null=True, blank=True, help_text="Past it, still unconfirmed: alerted (its batch's deadline decides the batch)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    broadcast_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The needs-attention counts (waiting for balance, fee cap or key; past deadline) on
            # every admin page read only the open payments.
            models.Index(
                fields=["waiting_for", "deadline_at"],
                condition=Q(
                    status__in=[HostPaymentStatus.CREATED, HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST]
                ),
                name="hostpayment_open_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=HostPaymentStatus.values), name="host_payment_status_valid"),
            models.CheckConstraint(
                condition=~Q(owner_kind="") & ~Q(chain="") & ~Q(asset=""), name="host_payment_names_owner_chain_asset"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0, amount_base_units__gt=0), name="host_payment_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(status=HostPaymentStatus.CREATED)
                | Q(status=HostPaymentStatus.FAILED)
                | (Q(tx_hash__isnull=False) & ~Q(raw_transaction="")),
                name="host_payment_signed_has_tx",
            ),
        ]

    def __str__(self) -> str:
        return f"host payment #{self.pk} ({format_amount(self.amount, self.asset)} on {self.chain}, {self.status})"


HOST_PAYMENT_MACHINE = StateMachine(subject="host_payment", model=HostPayment, transitions=HOST_PAYMENT_TRANSITIONS)


class HostPaymentCandidate(models.Model):
    """Every transaction ever signed for a host payment: the first, and each replacement (same
    sending slot, higher fees). All hashes are kept; whichever is mined is the payment."""

    host_payment = models.ForeignKey(HostPayment, on_delete=models.PROTECT, related_name="candidates")
    tx_hash = models.CharField(max_length=128, unique=True)
    raw_transaction = models.TextField()
    fee_details = models.JSONField(default=dict, blank=True, help_text="The chain adapter's fee parameters.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host_payment", "created_at", "id"]

    def __str__(self) -> str:
        return self.tx_hash
