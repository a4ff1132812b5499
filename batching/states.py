"""Statuses shared by conversions (batch_conversions) and client payouts (payout_batches).

created -> (awaiting_approval -> approved) -> swap_created -> funding -> funded -> exchanging
-> completed; side exits cancelled (no funds moved, rows released), failed and refunded (funds
moved: held for review, never released automatically).
"""

from django.db import models


class BatchStatus(models.TextChoices):
    CREATED = "created", "created"
    AWAITING_APPROVAL = "awaiting_approval", "awaiting approval"
    APPROVED = "approved", "approved"
    SWAP_CREATED = "swap_created", "exchange created"
    FUNDING = "funding", "funding (host payment sent)"
    FUNDED = "funded", "funded (confirmed on chain)"
    EXCHANGING = "exchanging", "exchanging"
    COMPLETED = "completed", "completed"
    CANCELLED = "cancelled", "cancelled"
    FAILED = "failed", "failed (review)"
    REFUNDED = "refunded", "refunded (review)"


# States in which an exchange id must already be stored.
STATUSES_WITH_EXCHANGE = [
    BatchStatus.SWAP_CREATED,
    BatchStatus.FUNDING,
    BatchStatus.FUNDED,
    BatchStatus.EXCHANGING,
    BatchStatus.COMPLETED,
]
TERMINAL_STATUSES = [
    BatchStatus.COMPLETED,
    BatchStatus.CANCELLED,
    BatchStatus.FAILED,
    BatchStatus.REFUNDED,
]
