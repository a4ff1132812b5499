"""Wallet address rules for client payout destinations."""

from django.core.exceptions import ValidationError

from integrations.addresses import address_problem


def validate_wallet_address(address: str, network: str) -> None:
    """Raise ValidationError unless `address` is acceptable for `network`. Networks whose
    addresses we cannot check ourselves are validated by the exchange before any payout."""
    problem = address_problem(address, network)
    if problem is not None:
        raise ValidationError(problem)
