"""Wallet address rules for client payout destinations."""

from django.core.exceptions import ValidationError

from integrations.addresses import address_problem, extra_id_problem


def validate_wallet_address(address: str, network: str) -> None:
    """Raise ValidationError unless `address` is acceptable for `network`. Networks whose
    addresses we cannot check ourselves are validated by the exchange before any payout."""
    problem = address_problem(address, network)
    if problem is not None:
        raise ValidationError(problem)


def validate_payout_extra_id(extra_id: str, network: str) -> None:
    """Raise ValidationError unless `extra_id` (a memo or destination tag) fits `network`."""
    problem = extra_id_problem(extra_id, network)
    if problem is not None:
        raise ValidationError(problem)
