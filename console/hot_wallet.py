"""The hot wallet as the overview shows it, one panel per configured chain: read from each
chain's node by a periodic job into `HotWalletSnapshot`, never by a web request (a node that is
down or slow must not slow or break the page). The page shows the last good values with their
age, or "not yet known". What a chain holds and how its fees read is its adapter's business."""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from payouts.host_payments.ports import ChainAdapter, chain_adapter, chain_config, configured_chains
from pgp_project.money_display import chain_reference, format_amount, format_time
from pgp_project.operations.alerts import Subject, alert, forget_alert
from pgp_project.operations.transient import TransientError

from .alerts import HOT_WALLET_LOW_BALANCE
from .models import HotWalletSnapshot

logger = logging.getLogger(__name__)


def refresh_hot_wallet_snapshots() -> list[HotWalletSnapshot]:
    """Every configured chain's wallet, each on its own: one node down leaves the others fresh."""
    return [refresh_hot_wallet_snapshot(chain_adapter(chain)) for chain in configured_chains()]


def refresh_hot_wallet_snapshot(adapter: ChainAdapter) -> HotWalletSnapshot:
    """Read one chain's balances and fee rate, and store them. On any failure the previous values
    stay and the failure is recorded (by its kind and our own words only: a transport error's
    text can hold the node's URL, and with it a key)."""
    now = timezone.now()
    snapshot, _ = HotWalletSnapshot.objects.get_or_create(chain=adapter.chain)
    try:
        reading = adapter.read_wallet()
    except (TransientError, RuntimeError, LookupError) as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - any refusal of the node: recorded, never raised into Beat
        error = f"the node refused the read: {type(exc).__name__}"
    else:
        HotWalletSnapshot.objects.filter(pk=snapshot.pk).update(
            address=reading.address,
            balances={symbol: f"{amount:f}" for symbol, amount in reading.balances.items()},
            fee_rate=reading.fee_rate,
            fetched_at=now,
            attempted_at=now,
            last_error="",
        )
        snapshot.refresh_from_db()
        alert_low_balances(adapter.chain, reading.balances)
        return snapshot
    logger.warning("hot wallet balances on %s not refreshed: %s", adapter.chain, error)
    HotWalletSnapshot.objects.filter(pk=snapshot.pk).update(attempted_at=now, last_error=error[:2000])
    snapshot.refresh_from_db()
    return snapshot


def low_balance_floors(chain: str) -> dict[str, Decimal]:
    """The floors a chain's configuration sets per asset (`low_balance`: {"usdt": "500"}), exact."""
    return {symbol: Decimal(str(floor)) for symbol, floor in chain_config(chain).get("low_balance", {}).items()}


def alert_low_balances(chain: str, balances: dict[str, Decimal]) -> None:
    """Alert each asset under its floor (once, then at most every PGP_ALERT_REPEAT_SECONDS); one
    back over it is forgotten, so the next time it runs low is news again."""
    for symbol, floor in low_balance_floors(chain).items():
        subject = Subject("hot_wallet", f"{chain}:{symbol}")
        held = balances.get(symbol)
        if held is not None and held < floor:
            alert(HOT_WALLET_LOW_BALANCE, subject, chain=chain, asset=symbol, balance=f"{held:f}", floor=f"{floor:f}")
        else:
            forget_alert(HOT_WALLET_LOW_BALANCE, subject)


@dataclass(frozen=True)
class HotWalletView:
    """One chain's snapshot as the page shows it; every value "not yet known" until a refresh
    succeeds."""

    chain: str
    known: bool
    address: str
    address_shown: str
    balances: list[tuple[str, str, str, str]]  # (asset symbol, unit, amount shown, "" or the floor it is under)
    fee_rate: str
    as_of: str
    age: str  # "3 minutes"
    age_seconds: float | None
    stale: bool
    last_error: str
    attempted_at: str


NOT_YET_KNOWN = "not yet known"


def hot_wallet_views(now: datetime | None = None) -> list[HotWalletView]:
    """One indexed read of the cached snapshots; never a node call."""
    now = now or timezone.now()
    snapshots = {snapshot.chain: snapshot for snapshot in HotWalletSnapshot.objects.all()}
    return [hot_wallet_view(chain_adapter(chain), snapshots.get(chain), now) for chain in configured_chains()]


def hot_wallet_view(adapter: ChainAdapter, snapshot: HotWalletSnapshot | None, now: datetime) -> HotWalletView:
    chain = adapter.chain
    address = snapshot.address if snapshot else ""
    shown = chain_reference(chain, "address", address) if address else "-"
    if snapshot is None or snapshot.fetched_at is None:
        return HotWalletView(
            chain=chain,
            known=False,
            address=address,
            address_shown=shown,
            balances=[],
            fee_rate=NOT_YET_KNOWN,
            as_of=NOT_YET_KNOWN,
            age="",
            age_seconds=None,
            stale=False,
            last_error=snapshot.last_error if snapshot else "",
            attempted_at=format_time(snapshot.attempted_at) if snapshot else "-",
        )
    age = (now - snapshot.fetched_at).total_seconds()
    floors = low_balance_floors(chain)
    return HotWalletView(
        chain=chain,
        known=True,
        address=address,
        address_shown=shown,
        balances=[
            (
                symbol,
                symbol.upper(),
                format_amount(Decimal(amount), symbol.upper()),
                format_amount(floors[symbol], symbol.upper())
                if symbol in floors and Decimal(amount) < floors[symbol]
                else "",
            )
            for symbol, amount in (snapshot.balances or {}).items()
        ],
        fee_rate=adapter.format_fee_rate(snapshot.fee_rate),
        as_of=format_time(snapshot.fetched_at),
        age=timesince(snapshot.fetched_at, now),
        age_seconds=age,
        stale=age > settings.PGP_HOT_WALLET_STALE_AFTER_SECONDS,
        last_error=snapshot.last_error,
        attempted_at=format_time(snapshot.attempted_at),
    )
