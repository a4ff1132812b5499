"""Demo fixtures for the embedded main job: an admin user, demo clients, short intervals, and the
second chain's configuration."""

import secrets
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from batching.conversion import CHECK_THRESHOLD_TASK
from console.tasks import REFRESH_HOT_WALLET_TASK
from payments.models import Client, PayoutStrategy
from payments.reference_prices import REFRESH_REFERENCE_PRICES_TASK
from payouts.client_payouts import CHECK_CLIENT_PAYOUTS_TASK
from pgp_project.operations.beat_schedule import default_jobs
from pgp_project.operations.tasks import RECOVERY_SWEEP_TASK

DEMO_ADMIN_USERNAME = "admin"
# Seconds between runs in the demo, so conversions and payouts show up within minutes.
DEMO_INTERVALS = {
    CHECK_THRESHOLD_TASK: 30,
    CHECK_CLIENT_PAYOUTS_TASK: 30,
    RECOVERY_SWEEP_TASK: 10,
    REFRESH_REFERENCE_PRICES_TASK: 60,
    REFRESH_HOT_WALLET_TASK: 15,
}
# The second local chain plays Polygon: another entry of the same EVM adapter class, its own anvil
# (chain id 31338), its own TestUSDT, the same hot-wallet key (one address, a nonce sequence each).
SECOND_CHAIN = "matic"
SECOND_CHAIN_ID = 31338
SECOND_CHAIN_RPC_URL_ENV = "POLYGON_RPC_URL"
SECOND_CHAIN_USDT_ENV = "POLYGON_USDT_CONTRACT_ADDRESS"


def with_second_chain(chains: dict[str, Any], *, low_usdt_balance: str = "1000") -> dict[str, Any]:
    """PGP_CHAINS with the second chain beside the first: what an operator would add for Polygon.
    Its hot wallet is funded by operator top-ups, so it warns under `low_usdt_balance` USDT."""
    second = {
        **chains["eth"],
        "rpc_url_env": SECOND_CHAIN_RPC_URL_ENV,
        "rpc_url_default": "",
        "chain_id": SECOND_CHAIN_ID,
        "native_asset": "matic",
        "confirmations": 2,
        "max_fee_gwei": 500,
        "tokens": {"usdt": {"contract_env": SECOND_CHAIN_USDT_ENV}},
        "low_balance": {"usdt": low_usdt_balance},
    }
    return {**chains, SECOND_CHAIN: second}


DEMO_CLIENTS = [
    # (external id, name, strategy, threshold USD, currency, network, wallet)
    # Paid in USDT on TRON: the sandbox simulates the payout hash (not an EVM chain).
    (
        "-1001000000001",
        "Demo channel A",
        PayoutStrategy.THRESHOLD,
        "25.00",
        "usdt",
        "trx",
        "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
    ),
    # Paid in ETH: the sandbox pays out on the local chain.
    (
        "-1001000000002",
        "Demo channel B",
        PayoutStrategy.THRESHOLD,
        "40.00",
        "eth",
        "eth",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    ),
    # Paid in USDT on the second chain, straight from our hot wallet there: no exchange.
    (
        "-1001000000004",
        "Demo channel D",
        PayoutStrategy.THRESHOLD,
        "10.00",  # low: its first payout follows the first conversion, so the demo shows it soon
        "usdt",
        SECOND_CHAIN,
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    ),
    # Instant: every payment is exchanged ETH -> USDC on its own.
    (
        "-1001000000003",
        "Demo channel C",
        PayoutStrategy.INSTANT,
        "0.00",
        "usdc",
        "eth",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    ),
]


def reset_demo_admin() -> str:
    """Create (or reset) the local demo superuser with a fresh random password; return it."""
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=DEMO_ADMIN_USERNAME, defaults={"email": "admin@localhost"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return password


DEMO_API_KEY_NAME = "demo gateway"


def fresh_demo_api_key() -> str:
    """A gateway API key for this run of the demo (the earlier runs' are revoked); its secret,
    shown in the banner once, as the admin shows a new key's."""
    from gateway_api.keys import create_api_key, revoke_api_key
    from gateway_api.models import ApiKey, KeyKind

    for earlier in ApiKey.objects.filter(name=DEMO_API_KEY_NAME, revoked=False):
        revoke_api_key(earlier, user=None)
    _, secret = create_api_key(name=DEMO_API_KEY_NAME, kind=KeyKind.GATEWAY)
    return secret


def ensure_demo_clients() -> None:
    for external_id, name, strategy, threshold, currency, network, wallet in DEMO_CLIENTS:
        Client.objects.get_or_create(
            external_id=external_id,
            defaults={
                "name": name,
                "payout_strategy": strategy,
                "payout_threshold_usd": Decimal(threshold),
                "payout_currency": currency,
                "payout_network": network,
                "wallet_address": wallet,
            },
        )


def apply_demo_intervals() -> None:
    """Point the default periodic jobs at the short demo intervals; a job without one (a daily
    clean-up, say) keeps its own."""
    for job in default_jobs():
        every = DEMO_INTERVALS.get(job.task)
        if every is None:
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.filter(name=job.name).update(interval=interval)
