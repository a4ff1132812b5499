"""Reconciliation: for a time range, the database against the chain, against the exchange's
records, and against its own sums. The expected discrepancy is zero; anything else is stored
with the run, shown on the console's page and alerted (`ALERT reconciliation_discrepancy`).

1. The chain. Every transaction the hot wallet's keys sent in the range, found by scanning the
   range's blocks (the blocks whose timestamps fall in it) for transactions from the keyring's
   addresses, plus the USDT `Transfer` events out of those addresses, is matched to the host
   payment with its hash: same recipient, same amount of the same asset, mined (or reverted) as
   we recorded, and the gas it cost (receipt gasUsed * effectiveGasPrice) as we recorded it. A
   host payment we recorded as mined in those blocks must be among them. Totals of ETH, USDT and
   gas sent, chain against database, are reported too. Scanning blocks is what a node alone
   allows; it is bounded (PGP_RECONCILE_MAX_BLOCKS): a longer range is reported, not silently
   cut. It suits the local chain and small ranges; on mainnet an indexer (an explorer's
   account-transactions API) would list the wallet's transactions instead.
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
from integrations.assets import ETH, USDT_ERC20, SendMethod, asset
from integrations.evm_node import EvmNode
from integrations.exchange.port import ExchangeError, ExchangeState, ExchangeStatus
from integrations.exchange.registry import exchange_provider
from payments.models import AccumulationStatus, PayoutAccumulation
from payouts.exchange_batches.requote import exchange_ref
from payouts.exchange_batches.states import OPEN_STATUSES, BatchStatus
from payouts.host_payments.evm import keyring
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

CHAIN = "eth"  # the hot wallet's chain (the EVM chain adapter's)
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

    def short(self) -> str:
        where = f"{self.object_kind}#{self.object_id}" if self.object_kind else self.tx_hash
        return f"{self.check}:{where}:{self.what}"


@dataclass
class ChainSend:
    """A transaction from one of the hot wallet's addresses (or a USDT transfer out of one)."""

    tx_hash: str
    block: int
    sender: str
    to: str = ""
    succeeded: bool = True
    value_wei: int = 0
    gas_fee_wei: int = 0
    usdt_transfers: list[tuple[str, int]] = field(default_factory=list)  # (to, units)
    sent_by_us: bool = True  # False: a transfer out of our address started by someone else

    def describe(self) -> str:
        parts = []
        if self.value_wei or not self.usdt_transfers:
            parts.append(f"{from_base_units(self.value_wei, ETH.decimals):f} ETH to {self.to or '(contract creation)'}")
        parts += [f"{from_base_units(units, USDT_ERC20.decimals):f} USDT to {to}" for to, units in self.usdt_transfers]
        if not self.succeeded:
            parts.append("reverted")
        return "; ".join(parts) + f" (block {self.block})"


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
            "chain": self.chain,
            "exchange": self.exchange,
            "internal": self.internal,
            "discrepancy_count": len(self.discrepancies),
            "discrepancies": [asdict(item) for item in self.discrepancies],
        }


# --- the run ------------------------------------------------------------------------------------


def reconcile(*, start: datetime, end: datetime, triggered_by: str, node: EvmNode | None = None) -> ReconciliationRun:
    """Compare everything for [start, end), store the run, and alert unless it found nothing."""
    if end <= start:
        raise ValueError("the range must end after it starts")
    report = Report(start=start, end=end)
    check_chain(report, node or EvmNode())
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


def _first_block_at_or_after(node: EvmNode, timestamp: int, latest: int, cache: dict[int, int]) -> int:
    """The first block whose timestamp is >= `timestamp` (latest + 1 if none): a binary search."""
    low, high = 0, latest + 1
    while low < high:
        middle = (low + high) // 2
        if middle not in cache:
            cache[middle] = node.block_timestamp(middle)
        if cache[middle] >= timestamp:
            high = middle
        else:
            low = middle + 1
    return low


def block_range(node: EvmNode, start: datetime, end: datetime) -> tuple[int, int] | None:
    """The blocks whose timestamps fall in [start, end), as (first, last); None if none do."""
    latest = node.block_number()
    cache: dict[int, int] = {}
    first = _first_block_at_or_after(node, int(start.timestamp()) + (start.microsecond > 0), latest, cache)
    last = _first_block_at_or_after(node, int(end.timestamp()) + (end.microsecond > 0), latest, cache) - 1
    return (first, last) if first <= last else None


def chain_sends(node: EvmNode, first: int, last: int, senders: set[str]) -> list[ChainSend]:
    sends: dict[str, ChainSend] = {}
    for number in range(first, last + 1):
        for tx in node.transactions_from(number, senders):
            tx_hash = _hex(tx["hash"])
            receipt = node.raw_receipt(tx_hash)
            sends[tx_hash] = ChainSend(
                tx_hash=tx_hash,
                block=number,
                sender=str(tx["from"]),
                to=str(tx.get("to") or receipt.get("contractAddress") or ""),
                succeeded=int(receipt["status"]) == 1,
                value_wei=int(tx["value"]),
                gas_fee_wei=int(receipt["gasUsed"]) * int(receipt.get("effectiveGasPrice", 0)),
            )
    token = _usdt_contract()
    if token:
        for sender in sorted(senders):
            for tx_hash, number, to, units in node.token_transfers_from(token, sender, first, last):
                send = sends.get(tx_hash.lower())
                if send is None:  # moved out of our address by a transaction someone else sent
                    send = sends[tx_hash.lower()] = ChainSend(tx_hash.lower(), number, sender, sent_by_us=False)
                send.usdt_transfers.append((to, units))
    return sorted(sends.values(), key=lambda send: (send.block, send.tx_hash))


def check_chain(report: Report, node: EvmNode) -> None:
    senders = {key.address.lower() for key in keyring()}
    blocks = block_range(node, report.start, report.end)
    report.chain = {"addresses": sorted(senders), "from_block": None, "to_block": None, "transactions": 0}
    if blocks is None:
        report.chain["totals"] = _totals(0, 0, 0, HostPayment.objects.none())
        return
    first, last = blocks
    bound = settings.PGP_RECONCILE_MAX_BLOCKS
    if last - first + 1 > bound:
        report.add(
            Discrepancy(
                "chain",
                f"the range holds {last - first + 1} blocks, more than PGP_RECONCILE_MAX_BLOCKS; "
                f"blocks {first + bound}-{last} were not scanned: reconcile a shorter range",
                expected=f"at most {bound} blocks",
                found=f"{last - first + 1} blocks",
            )
        )
        last = first + bound - 1
    report.chain.update(from_block=first, to_block=last)
    sends = chain_sends(node, first, last, senders)
    report.chain["transactions"] = len(sends)
    hashes = [send.tx_hash for send in sends]
    recorded = {hp.tx_hash.lower(): hp for hp in HostPayment.objects.filter(tx_hash__in=hashes) if hp.tx_hash}
    replaced = {
        candidate.tx_hash.lower(): candidate.host_payment
        for candidate in HostPaymentCandidate.objects.filter(tx_hash__in=hashes).select_related("host_payment")
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
                    found=send.describe(),
                )
            )
            continue
        if host_payment is None:
            what = (
                "a transaction from the hot wallet that no host payment records"
                if send.sent_by_us
                else "USDT moved out of the hot wallet by a transaction someone else sent"
            )
            report.add(
                Discrepancy("chain", what, tx_hash=send.tx_hash, expected="no transaction", found=send.describe())
            )
            continue
        items = _compare_send(host_payment, send)
        report.add(*items)
        in_flight += host_payment.status in (HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST)

    # What we recorded as mined in these blocks must be there.
    mined_here = HostPayment.objects.filter(chain=CHAIN, block_number__gte=first, block_number__lte=last)
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
            )
        )
    report.chain["in_flight"] = in_flight
    chain_eth = sum(send.value_wei for send in sends if send.succeeded and send.sent_by_us)
    chain_usdt = sum(units for send in sends for _, units in send.usdt_transfers)
    chain_gas = sum(send.gas_fee_wei for send in sends if send.sent_by_us)
    totals = _totals(chain_eth, chain_usdt, chain_gas, mined_here)
    report.chain["totals"] = totals
    if not report.discrepancies and any(row["chain"] != row["recorded"] for row in totals.values()):
        # Every transaction matched, yet the sums differ: say so rather than report zero.
        report.add(
            Discrepancy(
                "chain",
                "totals differ although every transaction matched",
                expected=str({name: row["recorded"] for name, row in totals.items()}),
                found=str({name: row["chain"] for name, row in totals.items()}),
            )
        )


def _totals(chain_eth: int, chain_usdt: int, chain_gas: int, mined_here: Any) -> dict[str, dict[str, str]]:
    moved = mined_here.exclude(status=HostPaymentStatus.FAILED)
    recorded_eth = moved.filter(asset=ETH.symbol).aggregate(t=Sum("amount_base_units"))["t"] or 0
    recorded_usdt = moved.filter(asset=USDT_ERC20.symbol).aggregate(t=Sum("amount_base_units"))["t"] or 0
    recorded_gas = mined_here.aggregate(t=Sum("network_fee"))["t"] or 0

    def row(chain: int, recorded: int | Decimal, unit: str, places: int) -> dict[str, str]:
        return {
            "unit": unit,
            "chain": f"{from_base_units(int(chain), places):f}",
            "recorded": f"{from_base_units(int(recorded), places):f}",
        }

    return {
        "eth_sent": row(chain_eth, recorded_eth, "ETH", ETH.decimals),
        "usdt_sent": row(chain_usdt, recorded_usdt, "USDT", USDT_ERC20.decimals),
        "gas": row(chain_gas, recorded_gas, "ETH", ETH.decimals),
    }


def _compare_send(host_payment: HostPayment, send: ChainSend) -> list[Discrepancy]:
    def item(what: str, expected: str, found: str) -> Discrepancy:
        return Discrepancy("chain", what, "host_payment", host_payment.pk, send.tx_hash, expected, found)

    items = []
    units = int(host_payment.amount_base_units)
    sent = asset(host_payment.chain, host_payment.asset)
    to = host_payment.to_address.lower()
    if sent.send_method == SendMethod.TOKEN:
        matches = send.value_wei == 0 and [(t.lower(), u) for t, u in send.usdt_transfers] == [(to, units)]
    else:
        matches = send.value_wei == units and send.to.lower() == to and not send.usdt_transfers
    # A reverted transaction moved nothing: its amount is the transaction's, not a transfer.
    if not send.succeeded and sent.send_method == SendMethod.TOKEN:
        matches = send.to.lower() == sent.contract_address().lower()
    if not matches:
        items.append(item("what was sent differs from the host payment", _recorded(host_payment), send.describe()))
    status = host_payment.status
    if send.succeeded and status == HostPaymentStatus.FAILED:
        items.append(item("mined and successful on chain, but recorded as failed", "failed (nothing sent)", "mined"))
    if not send.succeeded and status not in (HostPaymentStatus.FAILED, *_IN_FLIGHT):
        items.append(item("reverted on chain, but recorded as " + status, "reverted", status))
    if status == HostPaymentStatus.CONFIRMED and host_payment.block_number != send.block:
        items.append(item("mined in another block than recorded", str(host_payment.block_number), str(send.block)))
    if status not in _IN_FLIGHT:
        recorded_fee = None if host_payment.network_fee is None else int(host_payment.network_fee)
        if recorded_fee != send.gas_fee_wei:
            items.append(
                item(
                    "gas spent (gasUsed * effectiveGasPrice) differs from the recorded network fee",
                    "-" if recorded_fee is None else f"{from_base_units(recorded_fee, ETH.decimals):f} ETH",
                    f"{from_base_units(send.gas_fee_wei, ETH.decimals):f} ETH",
                )
            )
    return items


_IN_FLIGHT = (HostPaymentStatus.SIGNED, HostPaymentStatus.BROADCAST)


def _recorded(host_payment: HostPayment) -> str:
    return f"{host_payment.amount.normalize():f} {host_payment.asset.upper()} to {host_payment.to_address}"


def _usdt_contract() -> str:
    try:
        return USDT_ERC20.contract_address()
    except LookupError:
        return ""


def _hex(value: Any) -> str:
    text = value.hex() if isinstance(value, bytes | bytearray) else str(value)
    return (text if text.startswith("0x") else "0x" + text).lower()


# --- 2. the exchange's records ------------------------------------------------------------------


def _batches_in_range(model: type[ExchangeFundedBatch], start: datetime, end: datetime) -> Iterable[Any]:
    touched = Q(created_at__gte=start, created_at__lt=end) | Q(completed_at__gte=start, completed_at__lt=end)
    return model._default_manager.filter(touched, exchange_id__isnull=False).select_related("host_payment")


def check_exchanges(report: Report) -> None:
    checked = in_flight = 0
    for kind, model in (("conversion", BatchConversion), ("payout", PayoutBatch)):
        for batch in _batches_in_range(model, report.start, report.end):
            checked += 1
            items, still_open = _compare_exchange(kind, batch)
            report.add(*items)
            in_flight += still_open
    report.exchange = {"checked": checked, "in_flight": in_flight}


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
        return [item(f"the exchange {batch.exchange_id} could not be asked", "an answer", exc)], False
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
    exchange = f"exchange {batch.exchange_id}"
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
