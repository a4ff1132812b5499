"""The fields, constraints and index every exchange-funded batch shares (conversions and client
payouts), as an abstract model: each concrete batch adds only what is its own."""

from django.db import models
from django.db.models import Q

from pgp_project.money import eth_field

from ..exchange_batches.states import CLOSED_STATUSES, REVIEW_STATUSES, STATUSES_WITH_EXCHANGE, BatchStatus


class ExchangeFundedBatch(models.Model):
    """One exchange (or direct transfer), funded by one host payment from the hot wallet."""

    status = models.CharField(max_length=20, choices=BatchStatus.choices, default=BatchStatus.CREATED)
    exchange_provider = models.CharField(
        max_length=32,
        blank=True,
        help_text="The exchange provider its exchange is with (a PGP_EXCHANGES name, or direct): chosen when "
        "it is quoted, empty until then.",
    )
    # Null, not blank, until created: the uniqueness with the provider counts only real ids.
    exchange_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    payin_address = models.CharField(max_length=128, blank=True)
    exchange_from_amount = eth_field(null=True, blank=True, help_text="What the exchange asked us to deposit.")
    expected_amount = eth_field(null=True, blank=True, help_text="The exchange's estimate of what is paid out.")
    exchange_valid_until = models.DateTimeField(
        null=True, blank=True, help_text="When the exchange's fixed rate expires: funded only well before it."
    )
    exchange_status = models.CharField(
        max_length=20, blank=True, help_text="The provider's last status, as it says it."
    )
    abandoned_exchange_ids = models.JSONField(
        default=list,
        blank=True,
        help_text='Exchanges created and never funded ("provider:id"): after an ambiguous failure, or replaced '
        "by a re-quote.",
    )
    host_payment = models.OneToOneField(
        "payouts.HostPayment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payout_tx_hash = models.CharField(max_length=128, blank=True, help_text="The exchange's payout transaction.")
    review_reason = models.TextField(blank=True, help_text="Why it waits for an operator (history: the audit trail).")
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_action_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="%(class)s_status_valid"),
            models.CheckConstraint(
                condition=Q(exchange_id__isnull=True) | ~Q(exchange_provider=""),
                name="%(class)s_exchange_names_provider",
            ),
            # Each provider numbers its own exchanges: an id is unique only with its provider (id first, so
            # a search by exchange id alone uses the index too).
            models.UniqueConstraint(
                fields=["exchange_id", "exchange_provider"], name="%(class)s_exchange_unique_per_provider"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=STATUSES_WITH_EXCHANGE) | Q(exchange_id__isnull=False),
                name="%(class)s_exchange_id_when_created",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=REVIEW_STATUSES) | ~Q(review_reason=""),
                name="%(class)s_review_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[BatchStatus.FUNDING, BatchStatus.FUNDED, BatchStatus.EXCHANGING])
                | Q(host_payment__isnull=False),
                name="%(class)s_funding_has_host_payment",
            ),
        ]
        indexes = [
            models.Index(fields=["next_action_at"], condition=~Q(status__in=CLOSED_STATUSES), name="%(class)s_due_idx"),
            # The needs-attention count of batches in review, on every admin page.
            models.Index(fields=["status"], condition=Q(status__in=REVIEW_STATUSES), name="%(class)s_review_idx"),
            # The overview's completed batches per day and instant payouts of the last days.
            models.Index(fields=["completed_at"], condition=Q(status="completed"), name="%(class)s_completed_idx"),
            # The console's exact search: the exchange's deposit address and its payout hash.
            models.Index(fields=["payin_address"], name="%(class)s_payin_idx"),
            models.Index(fields=["payout_tx_hash"], name="%(class)s_payout_tx_idx"),
            # /metrics, every scrape: the oldest batch not yet closed (in review included), and those
            # with an error, from the few that are not.
            models.Index(
                fields=["created_at"],
                condition=~Q(status__in=[BatchStatus.COMPLETED, BatchStatus.CANCELLED, BatchStatus.MERGED]),
                name="%(class)s_unclosed_idx",
            ),
        ]
