"""The background thread that moves exchanges through ChangeNOW's statuses.

new -> waiting at once; waiting -> confirming when the deposit has its confirmations; then, one
step delay apart, confirming -> exchanging -> sending (payout broadcast) -> finished (payout
mined). A `next_outcome` fault instead ends a funded exchange in failed, or in refunded after the
deposit has been sent back on chain.

The statuses and their order are those listed under "Transaction status" in ChangeNOW's API v2
documentation (https://documenter.getpostman.com/view/8180765/SVfTPnM8): new, waiting, confirming,
exchanging, sending, finished, failed, refunded, verifying.
"""

import logging
import secrets
import threading
import time
from dataclasses import dataclass

import requests

from standins.sandbox_changenow.chain import SandboxChain, SeenTransfer
from standins.sandbox_changenow.exchanges import Deposit, Exchange, ExchangeStore, OnChainTransfer, utc_now
from standins.sandbox_changenow.pricing import amount_to, net_of_fixed_fee

logger = logging.getLogger("standins.sandbox_changenow")


@dataclass(frozen=True)
class LifecycleTiming:
    step_delay_seconds: float = 0.5  # time spent in each of confirming, exchanging, sending
    poll_interval_seconds: float = 0.2
    deposit_confirmations: int = 1  # 1 = the deposit's own block is enough
    rebroadcast_after_seconds: float = 5.0  # a payout not mined by then is sent again (same bytes)


class ExchangeWatcher:
    def __init__(self, store: ExchangeStore, chain: SandboxChain, timing: LifecycleTiming) -> None:
        self._store = store
        self._chain = chain
        self._timing = timing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-changenow-watcher", daemon=True)
        self._next_block = 0

    def start(self) -> None:
        # Payin addresses are created fresh after start-up, so older blocks cannot hold deposits.
        self._next_block = self._chain.latest_block() + 1
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._timing.poll_interval_seconds):
            try:
                self.tick()
            except requests.RequestException as error:
                # The chain is down or restarting: one line per tick, not a traceback each time.
                logger.warning("sandbox watcher: chain unreachable (%s); retrying", type(error).__name__)
            except Exception:
                logger.exception("sandbox watcher tick failed; retrying from the same block")

    def tick(self) -> None:
        latest = self._chain.latest_block()
        self._record_deposits(latest)
        for exchange in self._store.active():
            try:
                self._advance(exchange, latest)
            except Exception:
                logger.exception("exchange %s: step failed in status %s; retrying", exchange.id, exchange.status)

    # --- deposits -----------------------------------------------------------------------------

    def _record_deposits(self, latest: int) -> None:
        with self._store.lock:
            watched = {
                exchange.payin_address.lower(): exchange
                for exchange in self._store.active()
                if exchange.status in ("new", "waiting") and exchange.deposit is None
            }
        for seen in self._chain.transfers_to(watched.keys(), self._next_block, latest):
            exchange = watched[seen.to_address]
            if seen.asset.key != exchange.from_asset.key:
                logger.warning(
                    "exchange %s: ignored %s %s in %s (expects %s)",
                    exchange.id,
                    seen.amount,
                    seen.asset.currency,
                    seen.tx_hash,
                    exchange.from_asset.currency,
                )
                continue
            with self._store.lock:
                if exchange.deposit is not None:
                    continue  # the first deposit counts; ChangeNOW handles later ones by hand
                exchange.deposit = _deposit(seen)
                exchange.deposit_received_at = utc_now()
                exchange.updated_at = exchange.deposit_received_at
            logger.info(
                "exchange %s: deposit of %s %s in %s", exchange.id, seen.amount, seen.asset.currency, seen.tx_hash
            )
        self._next_block = latest + 1

    # --- statuses -----------------------------------------------------------------------------

    def _advance(self, exchange: Exchange, latest: int) -> None:
        status = exchange.status
        if status == "new":
            self._set_status(exchange, "waiting")
        elif status == "waiting":
            self._confirm_deposit(exchange, latest)
        elif exchange.seconds_in_status() < self._timing.step_delay_seconds:
            return
        elif status == "confirming":
            self._after_confirming(exchange)
        elif status == "exchanging":
            self._send_payout(exchange)
        elif status == "sending":
            self._finish_payout(exchange)

    def _confirm_deposit(self, exchange: Exchange, latest: int) -> None:
        deposit = exchange.deposit
        if deposit is None or latest - deposit.block_number + 1 < self._timing.deposit_confirmations:
            return
        with self._store.lock:
            exchange.amount_from = deposit.amount
            exchange.payin_hash = deposit.tx_hash
        if deposit.amount != exchange.expected_amount_from:
            logger.info(
                "exchange %s: received %s, expected %s; the fixed rate applies to what arrived",
                exchange.id,
                deposit.amount,
                exchange.expected_amount_from,
            )
        self._set_status(exchange, "confirming")

    def _after_confirming(self, exchange: Exchange) -> None:
        if exchange.outcome == "failed":
            self._set_status(exchange, "failed")
        elif exchange.outcome == "refunded" or _arrived_after_the_rate(exchange):
            self._refund(exchange)
        elif exchange.outcome == "verifying":
            self._set_status(exchange, "verifying")  # and there it stays: nothing moves it on
        else:
            assert exchange.amount_from is not None
            with self._store.lock:
                exchange.amount_to = net_of_fixed_fee(
                    amount_to(exchange.amount_from, exchange.net_rate, exchange.to_asset), exchange.withdrawal_fee
                )
            self._set_status(exchange, "exchanging")

    def _refund(self, exchange: Exchange) -> None:
        if exchange.pending_transfer is None:
            if not exchange.refund_address or exchange.amount_from is None:
                logger.warning("exchange %s: refund requested but no refund address; failing it", exchange.id)
                self._set_status(exchange, "failed")
                return
            transfer = self._chain.sign_transfer(
                exchange.from_asset, exchange.refund_address, exchange.amount_from, "refund"
            )
            with self._store.lock:
                exchange.pending_transfer = transfer
                exchange.refund_hash = transfer.tx_hash
                exchange.refund_amount = exchange.amount_from
                exchange.updated_at = utc_now()
            logger.info("exchange %s: refunding %s in %s", exchange.id, exchange.amount_from, transfer.tx_hash)
            self._chain.broadcast(transfer)
            return
        mined = self._settle(exchange, exchange.pending_transfer)
        if mined is not None:
            self._set_status(exchange, "refunded" if mined else "failed")

    def _send_payout(self, exchange: Exchange) -> None:
        assert exchange.amount_to is not None
        if not exchange.to_asset.is_on_local_chain:
            # Not on our chain: simulate the payout with a hash in that chain's usual shape.
            simulated = secrets.token_hex(32)
            with self._store.lock:
                exchange.payout_hash = "0x" + simulated if exchange.to_asset.address_format == "evm" else simulated
            self._set_status(exchange, "sending")
            return
        transfer = self._chain.sign_transfer(exchange.to_asset, exchange.payout_address, exchange.amount_to, "payout")
        # Recorded before it is broadcast, so a crash in between cannot lead to paying twice.
        with self._store.lock:
            exchange.pending_transfer = transfer
            exchange.payout_hash = transfer.tx_hash
        self._set_status(exchange, "sending")
        self._chain.broadcast(transfer)

    def _finish_payout(self, exchange: Exchange) -> None:
        if exchange.pending_transfer is None:
            self._set_status(exchange, "finished")
            return
        mined = self._settle(exchange, exchange.pending_transfer)
        if mined is not None:
            self._set_status(exchange, "finished" if mined else "failed")

    def _settle(self, exchange: Exchange, transfer: OnChainTransfer) -> bool | None:
        """True once mined, False if it reverted, None while pending (re-sent if it seems lost)."""
        status = self._chain.receipt_status(transfer.tx_hash)
        if status is None:
            if transfer.seconds_since_broadcast() > self._timing.rebroadcast_after_seconds:
                logger.info(
                    "exchange %s: %s %s not mined yet; broadcasting again",
                    exchange.id,
                    transfer.purpose,
                    transfer.tx_hash,
                )
                with self._store.lock:
                    exchange.pending_transfer = transfer.rebroadcast()
                self._chain.broadcast(transfer)
            return None
        if status != 1:
            logger.warning("exchange %s: %s %s reverted", exchange.id, transfer.purpose, transfer.tx_hash)
        return status == 1

    def _set_status(self, exchange: Exchange, status: str) -> None:
        with self._store.lock:
            previous = exchange.status
            exchange.status = status
            exchange.status_entered = time.monotonic()
            exchange.updated_at = utc_now()
        logger.info("exchange %s: %s -> %s", exchange.id, previous, status)


def _arrived_after_the_rate(exchange: Exchange) -> bool:
    """A fixed rate holds only for a deposit that arrives before it expires; a later one is sent
    back, as ChangeNOW does."""
    return (
        exchange.flow == "fixed-rate"
        and exchange.valid_until is not None
        and exchange.deposit_received_at is not None
        and exchange.deposit_received_at > exchange.valid_until
    )


def _deposit(seen: SeenTransfer) -> Deposit:
    return Deposit(tx_hash=seen.tx_hash, amount=seen.amount, block_number=seen.block_number)
