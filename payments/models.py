"""Clients, payments from NOWPayments, their IPN event history and payout accumulation rows."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round

from integrations.assets import client_payout_currencies, client_payout_currency_choices, unit_symbol
from pgp_project.money import USD_PLACES, USDT_PLACES, eth_field, percent_field, usd_field, usdt_field
from pgp_project.money_display import format_amount

from .external_ids import EXTERNAL_ID_RULE, FORBIDDEN_CHARACTER_CLASS, validate_external_id
from .wallets import validate_payout_extra_id, validate_wallet_address


class PayoutStrategy(models.TextChoices):
    THRESHOLD = "threshold", "threshold (accumulate, then pay out)"
    INSTANT = "instant", "instant (pay out every payment)"


# The currencies a client may be paid in, as the asset registry declares them; the database
# constraint below holds the same list.
PAYOUT_CURRENCY_CHOICES = client_payout_currency_choices()
PAYOUT_CURRENCIES = client_payout_currencies()


class Client(models.Model):
    """A merchant (a paid channel's owner) that receives payouts."""

    external_id = models.CharField(
        max_length=64, unique=True, validators=[validate_external_id], help_text="The channel id in order_id."
    )
    name = models.CharField(max_length=200, blank=True)
    payout_strategy = models.CharField(max_length=16, choices=PayoutStrategy.choices)
    payout_threshold_usd = usd_field(default=Decimal("0.00"))
    payout_currency = models.CharField(max_length=10, choices=PAYOUT_CURRENCY_CHOICES)
    payout_network = models.CharField(max_length=20, help_text="ChangeNOW network code, e.g. eth, trx, btc.")
    wallet_address = models.CharField(max_length=128)
    payout_extra_id = models.CharField(
        "memo / destination tag",
        max_length=256,
        blank=True,
        help_text="The wallet's memo or destination tag (ChangeNOW's extraId) on networks that have one (XRP, "
        "XLM, TON, ...). An exchange or custodial deposit address needs it: paid without it, the money is lost.",
    )
    fee_percent_override = percent_field(
        null=True, blank=True, help_text="Overrides the default platform fee % for this client."
    )
    is_active = models.BooleanField(
        default=True,
        help_text="An inactive client's payments are held and its credit is not paid out. A client created in "
        "the admin starts inactive: a second staff member confirms its activation.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who created this client (none: created by the system, e.g. a data import).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        # Requesting a change of these fields; it applies once a second person confirms it
        # (operations.confirm_change). The generic change_client grants neither.
        permissions = [
            ("change_payout_destination", "Can request a change of a client's wallet, network, currency or id"),
            ("change_fees_and_thresholds", "Can request a change of a client's fee or payout threshold"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(payout_strategy__in=PayoutStrategy.values), name="client_strategy_valid"
            ),
            models.CheckConstraint(condition=Q(payout_currency__in=PAYOUT_CURRENCIES), name="client_currency_valid"),
            models.CheckConstraint(condition=Q(payout_threshold_usd__gte=0), name="client_threshold_nonneg"),
            models.CheckConstraint(
                condition=~Q(payout_strategy=PayoutStrategy.THRESHOLD) | Q(payout_threshold_usd__gt=0),
                name="client_threshold_positive_for_threshold_strategy",
            ),
            models.CheckConstraint(
                condition=Q(fee_percent_override__isnull=True)
                | Q(fee_percent_override__gte=0, fee_percent_override__lt=100),
                name="client_fee_override_range",
            ),
            models.CheckConstraint(condition=~Q(wallet_address=""), name="client_wallet_not_empty"),
            models.CheckConstraint(condition=~Q(external_id=""), name="client_external_id_not_empty"),
            # The validator's rule, for rows written without it (an update, a script, SQL).
            models.CheckConstraint(
                condition=~Q(external_id__regex=FORBIDDEN_CHARACTER_CLASS),
                name="client_external_id_format",
                violation_error_message=EXTERNAL_ID_RULE,
                violation_error_code="external_id_format",
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors: dict[str, list[str]] = {}
        try:
            validate_wallet_address(self.wallet_address, self.payout_network or "")
        except ValidationError as exc:
            errors["wallet_address"] = exc.messages
        try:
            validate_payout_extra_id(self.payout_extra_id, self.payout_network or "")
        except ValidationError as exc:
            errors["payout_extra_id"] = exc.messages
        if self.payout_strategy == PayoutStrategy.THRESHOLD and not self.payout_threshold_usd > 0:
            errors["payout_threshold_usd"] = ["The threshold strategy needs a threshold above 0."]
        if errors:
            raise ValidationError(errors)


class PaymentStatus(models.TextChoices):
    """NOWPayments payment statuses, in the order a payment moves through them."""

    WAITING = "waiting"
    CONFIRMING = "confirming"
    CONFIRMED = "confirmed"
    SENDING = "sending"
    PARTIALLY_PAID = "partially_paid"
    FINISHED = "finished"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUNDED = "refunded"


class RoutingStatus(models.TextChoices):
    NOT_FINISHED = "not_finished", "not finished yet"
    ROUTED = "routed", "routed"
    HELD = "held", "held for review"


class Payment(models.Model):
    """One NOWPayments payment; its status only moves forward."""

    provider_payment_id = models.BigIntegerField(unique=True)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices)
    order_id = models.CharField(max_length=200)
    order_description = models.TextField(blank=True)
    price_amount = usd_field()
    price_currency = models.CharField(max_length=20)
    pay_amount = eth_field(null=True, blank=True)
    pay_currency = models.CharField(max_length=20, blank=True)
    actually_paid = eth_field(null=True, blank=True)
    outcome_amount = eth_field(null=True, blank=True)
    outcome_currency = models.CharField(max_length=20, blank=True)
    # No index of its own: payment_client_time_idx leads with client (one index less to maintain
    # on every insert).
    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.PROTECT, related_name="payments", db_index=False
    )
    user_id = models.BigIntegerField(null=True, blank=True, help_text="The paying user, from order_id.")
    routing_status = models.CharField(max_length=20, choices=RoutingStatus.choices, default=RoutingStatus.NOT_FINISHED)
    hold_reason = models.TextField(blank=True)
    accepted_price_amount = usd_field(
        null=True,
        blank=True,
        help_text="A partially paid payment an operator accepted: the USD its actually paid part is worth.",
    )
    raw_payload = models.JSONField(help_text="The latest accepted IPN body, amounts as strings.")
    # A further deposit to a payment's address is a new NOWPayments payment naming the first one
    # (`parent_payment_id`), priced at the rate of its own arrival: see routing.plan_routing.
    parent_provider_payment_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="A repeated deposit: NOWPayments' id of the payment whose address it was sent to.",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="repeated_deposits",
        db_index=False,  # payment_repeated_deposit_idx: partial, so ordinary payments maintain no index
        help_text="That payment, once it is recorded here.",
    )
    deposit_value_usd = usd_field(
        null=True,
        blank=True,
        help_text="A repeated deposit: its outcome's worth at the fresh reference price when it was routed "
        "(rounded down). Its price_amount is its parent's invoice, not its own.",
    )
    # Routing a held payment again needs a second person when the payment predates its client's
    # confirmed activation, or when the client's creator routes it: the first person's request.
    reroute_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reroute_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("resolve_held_payment", "Can route a held payment again or accept a partial payment")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=PaymentStatus.values), name="payment_status_valid"),
            models.CheckConstraint(
                condition=Q(routing_status__in=RoutingStatus.values), name="payment_routing_status_valid"
            ),
            models.CheckConstraint(condition=Q(price_amount__gte=0), name="payment_price_nonneg"),
            models.CheckConstraint(
                condition=Q(outcome_amount__isnull=True) | Q(outcome_amount__gte=0), name="payment_outcome_nonneg"
            ),
            models.CheckConstraint(
                condition=~Q(routing_status=RoutingStatus.HELD) | ~Q(hold_reason=""),
                name="payment_held_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(routing_status=RoutingStatus.ROUTED) | Q(client__isnull=False),
                name="payment_routed_has_client",
            ),
            models.CheckConstraint(
                condition=Q(parent__isnull=True) | Q(parent_provider_payment_id__isnull=False),
                name="payment_parent_named",
            ),
            models.CheckConstraint(
                condition=Q(deposit_value_usd__isnull=True)
                | Q(deposit_value_usd__gte=0, parent_provider_payment_id__isnull=False),
                name="payment_deposit_value_only_for_repeated_deposits",
            ),
            models.CheckConstraint(
                condition=Q(reroute_requested_by__isnull=True, reroute_requested_at__isnull=True)
                | Q(reroute_requested_by__isnull=False, reroute_requested_at__isnull=False, routing_status="held"),
                name="payment_reroute_request_complete_and_held",
            ),
        ]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(routing_status="held"), name="payment_held_idx"),
            # The longest-waiting held payment (the queue's order), for /metrics at every scrape.
            models.Index(
                fields=["updated_at", "id"], condition=Q(routing_status="held"), name="payment_held_since_idx"
            ),
            # Only repeated deposits are in these: an ordinary payment's insert (the IPN's hot path)
            # writes no entry.
            models.Index(
                fields=["parent_provider_payment_id"],
                condition=Q(parent_provider_payment_id__isnull=False),
                name="payment_repeated_deposit_idx",
            ),
            models.Index(fields=["parent"], condition=Q(parent__isnull=False), name="payment_parent_idx"),
            # The console's exact search by order id (the id the gateway knows a payment by).
            models.Index(fields=["order_id"], name="payment_order_id_idx"),
            # Newest first and date ranges (the API's list and its filters, the console's date
            # filter, the overview's last days); per client, for a client's key.
            models.Index(fields=["created_at"], name="payment_created_idx"),
            models.Index(fields=["client", "created_at"], name="payment_client_time_idx"),
        ]

    def __str__(self) -> str:
        price = format_amount(self.price_amount, unit_symbol(self.price_currency))
        return f"payment #{self.provider_payment_id} ({price}, {self.status})"

    @property
    def price_to_credit(self) -> Decimal:
        """The USD this payment is worth to its client: the invoice, the part an operator
        accepted of a partial payment, or a repeated deposit's worth by value (its invoice is its
        parent's, which would be credited twice)."""
        if self.accepted_price_amount is not None:
            return self.accepted_price_amount
        if self.deposit_value_usd is not None:
            return self.deposit_value_usd
        return self.price_amount

    @property
    def is_repeated_deposit(self) -> bool:
        return self.parent_provider_payment_id is not None


class IpnOutcome(models.TextChoices):
    APPLIED = "applied", "applied"
    DUPLICATE = "duplicate", "duplicate (already had this status)"
    STALE = "stale", "stale (older than the stored status; ignored)"
    UNKNOWN_STATUS = "unknown_status", "unknown status (recorded, moved nothing)"
    REJECTED_SIGNATURE = "rejected_signature", "rejected: signature"
    REJECTED_PAYLOAD = "rejected_payload", "rejected: payload"
    REJECTED_TOO_LARGE = "rejected_too_large", "rejected: body too large"


class PaymentEvent(models.Model):
    """Every IPN received, rejected ones included, with what was done with it and why."""

    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    provider_payment_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    reported_status = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(max_length=24, choices=IpnOutcome.choices)
    reason = models.TextField(blank=True)
    signature_valid = models.BooleanField(default=False)
    body = models.TextField(
        blank=True, help_text="The body of a signed IPN as received; never kept for a refused unsigned request."
    )
    body_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the body as received.")
    body_size = models.PositiveIntegerField(default=0)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=IpnOutcome.values), name="payment_event_outcome_valid"),
            models.CheckConstraint(
                condition=~Q(outcome__in=["applied", "duplicate", "stale", "unknown_status"])
                | Q(payment__isnull=False),
                name="payment_event_accepted_has_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"IPN {self.outcome} #{self.provider_payment_id or '?'}"


class AccumulationStatus(models.TextChoices):
    HELD = "held", "held for review"
    PENDING = "pending", "pending (ETH, awaiting conversion)"
    SWAPPING = "swapping", "swapping (claimed by a conversion)"
    CONVERTED = "converted", "converted (USDT credited)"
    IN_PAYOUT = "in_payout", "in payout (claimed by a client payout)"
    PAID_OUT = "paid_out", "paid out"


class SourceAsset(models.TextChoices):
    ETH = "eth", "ETH (converted in a micro-batch)"
    USDT = "usdterc20", "USDT ERC-20 (credited as received)"
    OTHER = "other", "other (held for review)"


class PayoutAccumulation(models.Model):
    """One finished threshold payment's value, from intake until it is paid out to the client."""

    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="accumulation")
    # No index of its own: accum_client_status_idx leads with client (one index less to maintain
    # on every status change of every row).
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="accumulations", db_index=False)
    user_id = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=AccumulationStatus.choices)
    hold_reason = models.TextField(blank=True)
    gross_usd = usd_field()
    fee_percent = percent_field(help_text="Platform fee % snapshotted at intake.")
    fee_usd = usd_field()
    net_usd = usd_field()
    source_asset = models.CharField(max_length=12, choices=SourceAsset.choices)
    source_currency = models.CharField(max_length=20, help_text="outcome_currency as NOWPayments sent it")
    source_amount = eth_field(help_text="What NOWPayments paid us (outcome_amount); for ETH, the ETH contributed.")
    # The batches that claimed the row, by id: they belong to the apps above this one (batching,
    # payouts), which call this app's services; a foreign key would point back up at them.
    batch_conversion_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    payout_batch_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    usdt_amount = usdt_field(null=True, blank=True, help_text="This row's USDT: its share of the conversion.")
    fee_usdt = usdt_field(null=True, blank=True, help_text="The platform's part of usdt_amount.")
    credit_usdt = usdt_field(null=True, blank=True, help_text="The client's part of usdt_amount.")
    wallet_address = models.CharField(max_length=128)
    payout_currency = models.CharField(max_length=10)
    payout_network = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    paid_out_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "payout_accumulation"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=AccumulationStatus.values), name="accum_status_valid"),
            models.CheckConstraint(condition=Q(source_asset__in=SourceAsset.values), name="accum_source_asset_valid"),
            models.CheckConstraint(
                condition=Q(gross_usd__gte=0, fee_usd__gte=0, net_usd__gte=0, source_amount__gte=0),
                name="accum_amounts_nonneg",
            ),
            models.CheckConstraint(
                condition=Q(fee_percent__gte=0, fee_percent__lt=100), name="accum_fee_percent_range"
            ),
            models.CheckConstraint(
                # Round() is a no-op on PostgreSQL's exact numerics (both columns have USD_PLACES);
                # kept so the constraint stays the one the migrations created.
                condition=Q(net_usd=Round(F("gross_usd") - F("fee_usd"), USD_PLACES)),
                name="accum_net_is_gross_minus_fee",
            ),
            models.CheckConstraint(
                condition=~Q(status=AccumulationStatus.HELD) | ~Q(hold_reason=""),
                name="accum_held_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[AccumulationStatus.PENDING, AccumulationStatus.SWAPPING])
                | Q(source_asset=SourceAsset.ETH),
                name="accum_only_eth_is_swapped",
            ),
            models.CheckConstraint(
                condition=~Q(status=AccumulationStatus.SWAPPING) | Q(batch_conversion_id__isnull=False),
                name="accum_swapping_has_conversion",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[AccumulationStatus.IN_PAYOUT, AccumulationStatus.PAID_OUT])
                | Q(payout_batch_id__isnull=False),
                name="accum_in_payout_has_batch",
            ),
            models.CheckConstraint(
                condition=~Q(
                    status__in=[
                        AccumulationStatus.CONVERTED,
                        AccumulationStatus.IN_PAYOUT,
                        AccumulationStatus.PAID_OUT,
                    ]
                )
                | Q(usdt_amount__isnull=False, fee_usdt__isnull=False, credit_usdt__isnull=False),
                name="accum_converted_has_usdt",
            ),
            models.CheckConstraint(
                condition=Q(usdt_amount__isnull=True)
                | Q(
                    usdt_amount=Round(F("fee_usdt") + F("credit_usdt"), USDT_PLACES),
                    fee_usdt__gte=0,
                    credit_usdt__gte=0,
                ),
                name="accum_usdt_is_fee_plus_credit",
            ),
            models.CheckConstraint(
                condition=~Q(status=AccumulationStatus.PAID_OUT) | Q(paid_out_at__isnull=False),
                name="accum_paid_out_has_time",
            ),
        ]
        indexes = [
            # The conversion check scans only pending rows; keep that scan small forever.
            models.Index(fields=["created_at"], condition=Q(status="pending"), name="accum_pending_idx"),
            models.Index(fields=["client", "status"], name="accum_client_status_idx"),
            # The overview's money by state and the held count read only the rows not yet paid
            # out: a set that stays small however many rows have been paid out.
            models.Index(fields=["status"], condition=~Q(status="paid_out"), name="accum_open_status_idx"),
            # Paid out today / in the last 7 days; a row enters it only when paid out (no
            # cost at intake).
            models.Index(fields=["paid_out_at"], condition=Q(status="paid_out"), name="accum_paid_out_at_idx"),
            BrinIndex(fields=["created_at"], name="accum_created_brin"),
            # The needs-attention queue's longest-waiting held row, for /metrics at every scrape.
            # Partial: a row written pending (the IPN's hot path) adds no entry.
            models.Index(fields=["updated_at", "id"], condition=Q(status="held"), name="accum_held_since_idx"),
        ]

    def __str__(self) -> str:
        return f"accumulation row #{self.pk} ({format_amount(self.net_usd, 'USD')} net, {self.status})"


class ReferencePrice(models.Model):
    """An asset's USD price from the exchange provider, refreshed by a periodic job. It is the
    independent measure that an IPN's invoice price is checked against (an outcome worth far more
    or less than the invoice is held for review) and that instant payouts are measured by."""

    asset_symbol = models.CharField(max_length=20, unique=True, help_text="e.g. eth")
    usd_price = models.DecimalField(max_digits=24, decimal_places=8)
    source = models.CharField(max_length=40, help_text="The exchange provider that quoted it.")
    fetched_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(usd_price__gt=0), name="reference_price_positive")]

    def __str__(self) -> str:
        when = f"{self.fetched_at:%Y-%m-%d %H:%M:%S %Z}"
        return f"1 {self.asset_symbol.upper()} = {self.usd_price} USD ({self.source}, {when})"


class UnverifiedIpnBody(models.Model):
    """The whole body, and the signature sent with it, of a refused IPN whose signature matched no
    documented form but whose size and shape look like a real notification's. NOWPayments documents
    the signed text four ways; if it ever signs in a way we do not reproduce, genuine payments are
    refused, and this keeps them so that each can be re-verified and replayed once the canonical
    form is fixed (`manage.py replay_ipn <event id>`). Anyone can send such a body, so it is kept
    only for a short while and only so many of them (payments/unverified_ipns.py); its refusal
    record keeps no body, and nothing the body says is stored as a fact."""

    event = models.OneToOneField(PaymentEvent, on_delete=models.CASCADE, related_name="unverified_body")
    body = models.TextField(help_text="As received (the sender's claim: unverified).")
    signature = models.CharField(max_length=128, help_text="x-nowpayments-sig as received.")
    kept_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"unverified IPN body of event #{self.event_id}"


class IpnEventCount(models.Model):
    """How many IPNs were recorded with each outcome, ever: /metrics exports them as counters.
    Incremented in the statement (or transaction) that records the event, never decremented: the
    retention job prunes refused events, not these. Each outcome is spread over a few `shard`
    rows picked by the database connection, so concurrent intakes rarely wait on one hot row;
    the total is their sum."""

    outcome = models.CharField(max_length=24, choices=IpnOutcome.choices)
    shard = models.PositiveSmallIntegerField()
    total = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["outcome", "shard"], name="ipn_event_count_outcome_shard_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} (shard {self.shard}): {self.total}"
