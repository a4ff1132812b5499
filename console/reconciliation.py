"""Reconciliation: for a time range, the database against the chain, against the exchange's
records, and against its own sums. The expected discrepancy is zero; anything else is stored
with the run, shown on the console's page and alerted (`ALERT reconciliation_discrepancy`).

1. The chain, for every configured chain. The chain's adapter lists every transaction the hot
   wallet's keys sent in the range (and every token transfer out of its addresses, whoever
   started it). Each is matched to the host payment with its hash: same recipient, same amount
   of the same asset, mined (or reverted) as we recorded, and the network fee it cost as we
   recorded it. A host payment we recorded as mined in the scanned blocks must be among them.
   Totals per asset and of network fees, chain against database, are reported too. A bounded
   scan (PGP_RECONCILE_MAX_BLOCKS) reports what it left out.
2. The exchange. Each conversion and payout with an exchange, created or completed in the range,
   is asked for by id through its provider's port: status, amount sent, amount received and
   payout transaction against what we stored.
3. Internal sums. For each conversion completed in the range, its rows' USDT is what the exchange
   paid (credit + fee), their ETH what the host payment sent; for each payout completed in the
   range, its rows are paid out and their credit is what the host payment sent.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from batching.models import BatchConversion
from integrations.assets import asset
from integrations.exchange.port import ExchangeError, ExchangeRef, ExchangeState, ExchangeStatus
from integrations.exchange.registry import exchange_provider
from payments.models import AccumulationStatus, PayoutAccumulation
from payouts.exchange_batches.requote import exchange_ref
from payouts.exchange_batches.states import OPEN_STATUSES, BatchStatus
from payouts.host_payments.ports import ChainAdapter, ChainSend, chain_adapter, configured_chains
from payouts.models import (
    ExchangeFundedBatch,
    HostPayment,
    HostPaymentCandidate,
    HostPaymentStatus,
    PayoutBatch,
    PayoutKind,
)
from pgp_project.money import USDT_QUANTUM, from_base_units
from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.transient import TransientError

from .alerts import RECONCILIATION_DISCREPANCY
from .models import ReconciliationRun, ReconciliationStatus

logger = logging.getLogger(__name__)

FIRST_ITEMS_IN_ALERT = 3


@dataclass(frozen=True)
class Discrepancy:
    """One thing that does not match: which check, what, where (an object and/or a transaction),
    what was expected and what was found."""

    check: str  # "chain", "exchange", "internal"
    what: str
    object_kind: str = ""  # "host_payment", "conversion", "payout", or "" for a transaction alone
    object_id: int | None = None
    tx_hash: str = ""
    expected: str = ""
    found: str = ""
    chain: str = ""  # the chain the transaction is on

    def short(self) -> str:
        where = f"{self.object_kind}#{self.object_id}" if self.object_kind else self.tx_hash
        return f"{self.check}:{where}:{self.what}"


@dataclass
class Report:
    start: datetime
    end: datetime
    discrepancies: list[Discrepancy] = field(default_factory=list)
    chain: dict[str, Any] = field(default_factory=dict)
    exchange: dict[str, Any] = field(default_factory=dict)
    internal: dict[str, Any] = field(default_factory=dict)

    def add(self, *items: Discrepancy) -> None:
        self.discrepancies.extend(items)

    def summary(self) -> dict[str, Any]:
        return {
            "range": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "chains": self.chain,
            "exchange": self.exchange,
            "internal": self.internal,
            "discrepancy_count": len(self.discrepancies),
            "discrepancies": [asdict(item) for item in self.discrepancies],
        }


# --- the run ------------------------------------------------------------------------------------


def reconcile(*, start: datetime, end: datetime, triggered_by: str) -> ReconciliationRun:
    """Compare everything for [start, end), store the run, and alert unless it found nothing."""
    if end <= start:
        raise ValueError("the range must end after it starts")
    report = Report(start=start, end=end)
    for chain in configured_chains():
        check_chain(report, chain_adapter(chain))
    check_exchanges(report)
    check_internal_sums(report)
    count = len(report.discrepancies)
    run = ReconciliationRun.objects.create(
        range_start=start,
        range_end=end,
        status=ReconciliationStatus.DISCREPANCIES if count else ReconciliationStatus.OK,
        discrepancy_count=count,
        triggered_by=triggered_by[:150],
        summary=report.summary(),
    )
    if count:
        by_check: dict[str, int] = defaultdict(int)
        for item in report.discrepancies:
            by_check[item.check] += 1
        alert(
            RECONCILIATION_DISCREPANCY,
            Subject("reconciliation_run", run.pk),
            run=run.pk,
            from_=start.isoformat(),
            to=end.isoformat(),
            count=count,
            chain=by_check["chain"],
            exchange=by_check["exchange"],
            internal=by_check["internal"],
            first=" | ".join(item.short() for item in report.discrepancies[:FIRST_ITEMS_IN_ALERT]),
        )
    else:
        logger.info("reconciliation #%s %s - %s: no discrepancy", run.pk, start.isoformat(), end.isoformat())
    return run


# --- 1. the chain -------------------------------------------------------------------------------


def check_chain(report: Report, adapter: ChainAdapter) -> None:
    chain = adapter.chain
    try:
        scan = adapter.scan_sends(report.start, report.end, settings.PGP_RECONCILE_MAX_BLOCKS)
    except (TransientError, RuntimeError, LookupError) as exc:
        report.add(Discrepancy("chain", f"{chain}: the chain could not be read ({exc})", chain=chain))
        report.chain[chain] = {"addresses": [], "from_block": None, "to_block": None, "transactions": 0}
        return
    summary: dict[str, Any] = {
        "addresses": scan.addresses,
        "from_block": scan.first_block,
        "to_block": scan.last_block,
        "transactions": len(scan.sends),
    }
    report.chain[chain] = summary
    if scan.first_block is None or scan.last_block is None:
        summary["totals"] = _totals(adapter, [], HostPayment.objects.none())
        return
    if scan.unscanned:
        report.add(
            Discrepancy(
                "chain",
                f"{chain}: the range holds more blocks than PGP_RECONCILE_MAX_BLOCKS; {scan.unscanned} were not "
                "scanned: reconcile a shorter range",
                expected="every block of the range scanned",
                found=scan.unscanned,
                chain=chain,
            )
        )
    sends = scan.sends
    hashes = [send.tx_hash for send in sends]
    recorded = {
        hp.tx_hash.lower(): hp for hp in HostPayment.objects.filter(chain=chain, tx_hash__in=hashes) if hp.tx_hash
    }
    replaced = {
        candidate.tx_hash.lower(): candidate.host_payment
        for candidate in HostPaymentCandidate.objects.filter(
            host_payment__chain=chain, tx_hash__in=hashes
        ).select_related("host_payment")
    }
    in_flight = 0
    for send in sends:
        host_payment = recorded.get(send.tx_hash)
        if host_payment is None and send.tx_hash in replaced:
            other = replaced[send.tx_hash]
            report.add(
                Discrepancy(
                    "chain",
                    "a replaced candidate of this host payment was mined, not the transaction it records",
                    "host_payment",
                    other.pk,
                    send.tx_hash,
                    expected=f"{other.tx_hash} mined",
                    found=send.description,
                    chain=chain,
                )
            )
            continue
        if host_payment is None:
            what = (
                "a transaction from the hot wallet that no host payment records"
                if send.sent_by_us
                else "tokens moved out of the hot wallet by a transaction someone else sent"
            )
            report.add(
                Discrepancy(
                    "chain", what, tx_hash=send.tx_hash, expected="no transaction", found=send.description, chain=chain
                )
            )
            continue
        report.add(*_compare_send(adapter, host_payment, send))
        in_flight += host_payment.status in _IN_FLIGHT

    # What we recorded as mined in these blocks must be there.
    mined_here = HostPayment.objects.filter(
        chain=chain, block_number__gte=scan.first_block, block_number__lte=scan.last_block
    )
    for host_payment in mined_here.exclude(tx_hash__in=hashes):
        report.add(
            Discrepancy(
                "chain",
                "recorded as mined in this range, but no such transaction from the hot wallet is on chain",
                "host_payment",
                host_payment.pk,
                host_payment.tx_hash or "",
                expected=f"{_recorded(host_payment)} in block {host_payment.block_number}",
                found="nothing",
                chain=chain,
            )
        )
    summary["in_flight"] = in_flight
    totals = _totals(adapter, sends, mined_here)
    summary["totals"] = totals
    if not report.discrepancies and any(row["chain"] != row["recorded"] for row in totals.values()):
        # Every transaction matched, yet the sums differ: say so rather than report zero.
        report.add(
            Discrepancy(
                "chain",
                f"{chain}: totals differ although every transaction matched",
                expected=str({name: row["recorded"] for name, row in totals.items()}),
                found=str({name: row["chain"] for name, row in totals.items()}),
                chain=chain,
            )
        )


NETWORK_FEES = "network_fees"


def _totals(adapter: ChainAdapter, sends: list[ChainSend], mined_here: Any) -> dict[str, dict[str, str]]:
    """Per asset sent, and for network fees: the chain's sum against the database's."""
    moved = mined_here.exclude(status=HostPaymentStatus.FAILED)
    recorded_by_asset = dict(
        moved.values_list("asset").annotate(total=Sum("amount_base_units")).values_list("asset", "total")
    )
    on_chain: dict[str, int] = defaultdict(int)
    for send in sends:
        for symbol, _, units in send.transfers:
            on_chain[symbol] += units
    totals = {}
    for symbol in sorted({*on_chain, *recorded_by_asset} or {adapter.native_asset}):
        sent = asset(adapter.chain, symbol)
        totals[f"{symbol}_sent"] = _total_row(
            on_chain[symbol], recorded_by_asset.get(symbol) or 0, sent.symbol.upper(), sent.decimals
        )
    native = asset(adapter.chain, adapter.native_asset)
    totals[NETWORK_FEES] = _total_row(
        sum(send.network_fee for send in sends if send.sent_by_us),
        mined_here.aggregate(t=Sum("network_fee"))["t"] or 0,
        native.symbol.upper(),
        native.decimals,
    )
    return totals


def _total_row(chain: int, recorded: int | Decimal, unit: str, places: int) -> dict[str, str]:
    return {
        "unit": unit,
        "chain": f"{from_base_units(int(chain), places):f}",
        "recorded": f"{from_base_units(int(recorded), places):f}",
    }


def _compare_send(adapter: ChainAdapter, host_payment: HostPayment, send: ChainSend) -> list[Discrepancy]:
    def item(what: str, expected: str, found: str) -> Discrepancy:
        return Discrepancy("chain", what, "host_payment", host_payment.pk, send.tx_hash, expected, found, adapter.chain)

    items = []
    expected_transfers = [(host_payment.asset, host_payment.to_address.lower(), int(host_payment.amount_base_units))]
    found_transfers = [(symbol, to.lower(), units) for symbol, to, units in send.transfers]
    # A reverted transaction moved nothing: only its fee was spent.
    matches = found_transfers == (expected_transfers if send.succeeded else [])
    if not matches:
        items.append(item("what was sent differs from the host payment", _recorded(host_payment), send.description))
    status = host_payment.status
    if send.succeeded and status == HostPaymentStatus.FAILED:
        items.append(item("mined and successful on chain, but recorded as failed", "failed (nothing sent)", "mined"))
    if not send.succeeded and status not in (HostPaymentStatus.FAILED, *_IN_FLIGHT):
        items.append(item("reverted on chain, but recorded as " + status, "reverted", status))
    if status == HostPaymentStatus.CONFIRMED and host_payment.block_number != send.block:
        items.append(item("mined in another block than recorded", str(host_payment.block_number), str(send.block)))
    if status not in _IN_FLIGHT:
        recorded_fee = None if host_payment.network_fee is None else int(host_payment.network_fee)
        if recorded_fee != send.network_fee:
            items.append(
                item(
                    "the network fee spent on chain differs from the recorded network fee",
                    adapter.format_network_fee(recorded_fee),
                    adapter.format_network_fee(send.network_fee),
                )
            )
    return items


_IN_FLIGHT = (HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST)


def _recorded(host_payment: HostPayment) -> str:
    return f"{host_payment.amount.normalize():f} {host_payment.asset.upper()} to {host_payment.to_address}"


# --- 2. the exchange's records ------------------------------------------------------------------


def _batches_in_range(model: type[ExchangeFundedBatch], start: datetime, end: datetime) -> Iterable[Any]:
    touched = Q(created_at__gte=start, created_at__lt=end) | Q(completed_at__gte=start, completed_at__lt=end)
    return model._default_manager.filter(touched, exchange_id__isnull=False).select_related("host_payment")


def check_exchanges(report: Report) -> None:
    """Each batch's exchange, asked of the provider it is with (routing may have put batches of
    one day with different providers), and each exchange a batch abandoned, asked of its own
    provider: it must never have received a deposit."""
    checked = in_flight = abandoned = 0
    by_provider: dict[str, int] = {}
    for kind, model in (("conversion", BatchConversion), ("payout", PayoutBatch)):
        for batch in _batches_in_range(model, report.start, report.end):
            checked += 1
            by_provider[batch.exchange_provider] = by_provider.get(batch.exchange_provider, 0) + 1
            items, still_open = _compare_exchange(kind, batch)
            report.add(*items)
            in_flight += still_open
            for entry in batch.abandoned_exchange_ids:
                abandoned += 1
                report.add(*_check_abandoned(kind, batch, entry))
    report.exchange = {
        "checked": checked,
        "in_flight": in_flight,
        "by_provider": dict(sorted(by_provider.items())),
        "abandoned_checked": abandoned,
    }


# What a provider says of an exchange once a deposit reached it.
DEPOSIT_RECEIVED = (
    ExchangeStatus.CONFIRMING,
    ExchangeStatus.VERIFYING,
    ExchangeStatus.EXCHANGING,
    ExchangeStatus.SENDING,
    ExchangeStatus.FINISHED,
    ExchangeStatus.REFUNDED,
)


def _check_abandoned(kind: str, batch: Any, entry: str) -> list[Discrepancy]:
    provider, _, exchange_id = entry.rpartition(":")
    provider = provider or batch.exchange_provider
    found: object
    try:
        state = exchange_provider(provider).status(ExchangeRef(id=exchange_id))
    except (ExchangeError, TransientError, LookupError) as exc:
        found = exc
    else:
        if state.status not in DEPOSIT_RECEIVED:
            return []
        found = state.provider_status
    return [
        Discrepancy(
            "exchange",
            f"{provider} exchange {exchange_id}, abandoned unfunded, "
            + ("could not be asked" if isinstance(found, Exception) else "received a deposit"),
            kind,
            batch.pk,
            "",
            "no deposit",
            str(found),
        )
    ]


def _compare_exchange(kind: str, batch: Any) -> tuple[list[Discrepancy], bool]:
    def item(what: str, expected: object, found: object) -> Discrepancy:
        return Discrepancy(
            "exchange",
            what,
            kind,
            batch.pk,
            batch.payout_tx_hash or "",
            "-" if expected is None else str(expected),
            "-" if found is None else str(found),
        )

    try:
        state = exchange_provider(batch.exchange_provider).status(exchange_ref(batch))
    except (ExchangeError, TransientError, LookupError) as exc:
        return [
            item(f"{batch.exchange_provider} exchange {batch.exchange_id} could not be asked", "an answer", exc)
        ], False
    status = batch.status
    if status in OPEN_STATUSES:
        return [], True  # under way: the flow itself follows the exchange
    if status == BatchStatus.COMPLETED:
        return _compare_completed(kind, batch, state, item), False
    items: list[Discrepancy] = []
    if status == BatchStatus.CANCELLED:
        if state.status not in (ExchangeStatus.AWAITING_DEPOSIT, ExchangeStatus.FAILED):
            items.append(
                item(
                    f"exchange {batch.exchange_id} of a cancelled batch received funds",
                    "awaiting deposit or expired",
                    state.provider_status,
                )
            )
    elif status == BatchStatus.REFUNDED:
        if state.status != ExchangeStatus.REFUNDED:
            items.append(item(f"exchange {batch.exchange_id}: status", "refunded", state.provider_status))
    elif status == BatchStatus.FAILED and state.status == ExchangeStatus.FINISHED:
        items.append(item(f"exchange {batch.exchange_id} finished, but the batch is in review", "failed", "finished"))
    return items, False


def _compare_completed(kind: str, batch: Any, state: ExchangeState, item: Any) -> list[Discrepancy]:
    exchange = f"{batch.exchange_provider} exchange {batch.exchange_id}"
    items: list[Discrepancy] = []
    if state.status != ExchangeStatus.FINISHED:
        items.append(item(f"{exchange}: status", "finished", state.provider_status))
    received = batch.received_usdt if kind == "conversion" else batch.payout_amount
    reported = state.amount_to
    if kind == "conversion" and reported is not None:  # as distribution records it (6 dp, down)
        reported = reported.quantize(USDT_QUANTUM, rounding=ROUND_DOWN)
    if reported != received:
        items.append(item(f"{exchange}: amount received", received, state.amount_to))
    sent = batch.host_payment.amount if batch.host_payment is not None else None
    if state.amount_from is not None and state.amount_from != sent:
        items.append(item(f"{exchange}: amount sent", sent, state.amount_from))
    if state.payout_hash and batch.payout_tx_hash and state.payout_hash.lower() != batch.payout_tx_hash.lower():
        items.append(item(f"{exchange}: payout transaction", batch.payout_tx_hash, state.payout_hash))
    return items


# --- 3. internal sums ---------------------------------------------------------------------------


def check_internal_sums(report: Report) -> None:
    completed = Q(status=BatchStatus.COMPLETED, completed_at__gte=report.start, completed_at__lt=report.end)
    conversions = list(BatchConversion.objects.filter(completed).select_related("host_payment"))
    payouts = list(PayoutBatch.objects.filter(completed).select_related("host_payment"))
    for conversion in conversions:
        report.add(*_conversion_sums(conversion))
    for payout in payouts:
        report.add(*_payout_sums(payout))
    report.internal = {"conversions": len(conversions), "payouts": len(payouts)}


def _sums(rows: Any) -> dict[str, Any]:
    return rows.aggregate(
        count=Count("id"),
        eth=Sum("source_amount"),
        usdt=Sum("usdt_amount"),
        credit=Sum("credit_usdt"),
        fee=Sum("fee_usdt"),
    )


def _conversion_sums(conversion: BatchConversion) -> list[Discrepancy]:
    def item(what: str, expected: object, found: object) -> Discrepancy:
        return Discrepancy("internal", what, "conversion", conversion.pk, "", str(expected), str(found))

    sums = _sums(PayoutAccumulation.objects.filter(batch_conversion_id=conversion.pk))
    items = []
    if (sums["count"] or 0) != conversion.row_count:
        items.append(item("rows claimed", conversion.row_count, sums["count"] or 0))
    if sums["eth"] != conversion.total_eth:
        items.append(item("rows' ETH = conversion's ETH", conversion.total_eth, sums["eth"]))
    sent = conversion.host_payment.amount if conversion.host_payment is not None else None
    if sent != conversion.total_eth:
        items.append(item("ETH sent by the host payment = conversion's ETH", conversion.total_eth, sent))
    if sums["usdt"] != conversion.received_usdt:
        items.append(item("rows credited (credit + fee) = USDT received", conversion.received_usdt, sums["usdt"]))
    if sums["credit"] != conversion.credit_usdt_total:
        items.append(item("rows' credit = conversion's credit total", conversion.credit_usdt_total, sums["credit"]))
    if sums["fee"] != conversion.fee_usdt_total:
        items.append(item("rows' fee = conversion's fee total", conversion.fee_usdt_total, sums["fee"]))
    return items


def _payout_sums(payout: PayoutBatch) -> list[Discrepancy]:
    def item(what: str, expected: object, found: object) -> Discrepancy:
        return Discrepancy("internal", what, "payout", payout.pk, "", str(expected), str(found))

    items = []
    sent = payout.host_payment.amount if payout.host_payment is not None else None
    if sent != payout.source_amount:
        items.append(item("sent by the host payment = payout's amount", payout.source_amount, sent))
    if payout.kind == PayoutKind.THRESHOLD:
        rows = PayoutAccumulation.objects.filter(payout_batch_id=payout.pk)
        sums = _sums(rows)
        if (sums["count"] or 0) != payout.row_count:
            items.append(item("rows paid out", payout.row_count, sums["count"] or 0))
        if rows.exclude(status=AccumulationStatus.PAID_OUT).exists():
            items.append(item("every row paid out", "paid_out", "some rows in another state"))
        if sums["credit"] != payout.total_usdt:
            items.append(item("rows' credit = payout's USDT", payout.total_usdt, sums["credit"]))
        if payout.total_usdt != payout.source_amount:
            items.append(item("payout's USDT = what it sends", payout.total_usdt, payout.source_amount))
    return items


def default_range() -> tuple[datetime, datetime]:
    """The previous whole day, in the configured timezone: what the daily job reconciles."""
    today = timezone.localdate()
    return day_start(today - timedelta(days=1)), day_start(today)


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
