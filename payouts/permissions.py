"""This app's dedicated money permissions (see PGP_MONEY_PERMISSIONS): the generic change
permissions of its models grant none of them."""

APPROVE_PAYOUT = "payouts.approve_payout"  # approve or reject a payout above the approval limit
OPERATE_BATCH = "payouts.operate_batch"  # re-drive, cancel, resume, release, re-verify
