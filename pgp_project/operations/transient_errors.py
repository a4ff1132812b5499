"""Failures that a later retry can cure (network, node, rate limits, lock timeouts)."""

from django.db import OperationalError

from integrations.changenow import ChangeNowBadResponse, ChangeNowUnavailable
from integrations.ethereum import ChainError

TRANSIENT_ERRORS = (ChangeNowUnavailable, ChangeNowBadResponse, ChainError, OperationalError)


def retry_after_of(error: BaseException) -> float | None:
    return getattr(error, "retry_after", None)
