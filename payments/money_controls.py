"""Which fields of a client are money controls: a change of one is requested by one staff member
and applies once a second confirms it (`pgp_project.operations.pending_changes`)."""

from pgp_project.operations.pending_changes import register_guarded_fields

from .models import Client

CLIENT_SUBJECT = "client"
CHANGE_DESTINATION = "payments.change_payout_destination"
CHANGE_FEES_AND_THRESHOLDS = "payments.change_fees_and_thresholds"
RESOLVE_HELD_PAYMENT = "payments.resolve_held_payment"  # route a held payment again, accept a partial one

CLIENT_GUARDED_FIELDS = {
    # Where the client's money goes. external_id too: it is what an incoming payment's order_id
    # names, so swapping two clients' ids would send one client's payments to the other's wallet.
    "wallet_address": CHANGE_DESTINATION,
    "payout_network": CHANGE_DESTINATION,
    "payout_currency": CHANGE_DESTINATION,
    "external_id": CHANGE_DESTINATION,
    # How much of it, and when.
    "fee_percent_override": CHANGE_FEES_AND_THRESHOLDS,
    "payout_threshold_usd": CHANGE_FEES_AND_THRESHOLDS,
}


def register_client_money_controls() -> None:
    register_guarded_fields(CLIENT_SUBJECT, Client, CLIENT_GUARDED_FIELDS)
