"""The hot wallet as the overview shows it: read from the node by a periodic job into
`HotWalletSnapshot`, never by a web request (a node that is down or slow must not slow or break
the page). The page shows the last good values with their age, or "not yet known"."""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from integrations.assets import asset
from integrations.evm_node import ChainError, EvmNode
from payouts.host_payments.evm import hot_wallet_key
from pgp_project.money import ETH_PLACES, USDT_PLACES, from_base_units
from pgp_project.money_display import format_amount, format_gwei, format_time

from .models import HotWalletSnapshot

logger = logging.getLogger(__name__)

CHAIN = "eth"


def refresh_hot_wallet_snapshot(node: EvmNode | None = None) -> HotWalletSnapshot:
    """Read the hot wallet's ETH and USDT balances and the gas price, and store them. On any
    failure the previous values stay and the failure is recorded (by its kind and our own words
    only: a transport error's text can hold the RPC URL, and with it a key)."""
    now = timezone.now()
    snapshot, _ = HotWalletSnapshot.objects.get_or_create(chain=CHAIN)
    try:
        address = hot_wallet_key().address
        node = node or EvmNode(timeout=settings.PGP_CONSOLE_NODE_TIMEOUT_SECONDS)
        native = node.eth_balance(address)
        usdt = node.token_balance(asset(CHAIN, "usdt").contract_address(), address)
        gas_price = node.gas_price()
    except (ChainError, RuntimeError, LookupError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - any refusal of the node: recorded, never raised into Beat
        error = f"the node refused the read: {type(exc).__name__}"
    else:
        HotWalletSnapshot.objects.filter(pk=snapshot.pk).update(
            address=address,
            native_base_units=native,
            usdt_base_units=usdt,
            gas_price_wei=gas_price,
            fetched_at=now,
            attempted_at=now,
            last_error="",
        )
        snapshot.refresh_from_db()
        return snapshot
    logger.warning("hot wallet balances not refreshed: %s", error)
    HotWalletSnapshot.objects.filter(pk=snapshot.pk).update(attempted_at=now, last_error=error[:2000])
    snapshot.refresh_from_db()
    return snapshot


@dataclass(frozen=True)
class HotWalletView:
    """The snapshot as the page shows it; every value "not yet known" until a refresh succeeds."""

    known: bool
    address: str
    eth: str
    usdt: str
    gas_price: str
    as_of: str
    age: str  # "3 minutes"
    age_seconds: float | None
    stale: bool
    last_error: str
    attempted_at: str


NOT_YET_KNOWN = "not yet known"


def hot_wallet_view(now: datetime | None = None) -> HotWalletView:
    """One indexed read of the cached snapshot; never a node call."""
    now = now or timezone.now()
    snapshot = HotWalletSnapshot.objects.filter(chain=CHAIN).first()
    if snapshot is None or snapshot.fetched_at is None:
        return HotWalletView(
            known=False,
            address=snapshot.address if snapshot else "",
            eth=NOT_YET_KNOWN,
            usdt=NOT_YET_KNOWN,
            gas_price=NOT_YET_KNOWN,
            as_of=NOT_YET_KNOWN,
            age="",
            age_seconds=None,
            stale=False,
            last_error=snapshot.last_error if snapshot else "",
            attempted_at=format_time(snapshot.attempted_at) if snapshot else "-",
        )
    age = (now - snapshot.fetched_at).total_seconds()
    return HotWalletView(
        known=True,
        address=snapshot.address,
        eth=format_amount(from_base_units(int(snapshot.native_base_units or 0), ETH_PLACES), "ETH"),
        usdt=format_amount(from_base_units(int(snapshot.usdt_base_units or 0), USDT_PLACES), "USDT"),
        gas_price=format_gwei(snapshot.gas_price_wei),
        as_of=format_time(snapshot.fetched_at),
        age=timesince(snapshot.fetched_at, now),
        age_seconds=age,
        stale=age > settings.PGP_HOT_WALLET_STALE_AFTER_SECONDS,
        last_error=snapshot.last_error,
        attempted_at=format_time(snapshot.attempted_at),
    )
