"""`manage.py reconcile [--from DAY] [--to DAY]`: the database against the chain, the exchange's
records and its own sums (console/reconciliation.py). Days are whole days in the configured
timezone, both included; an ISO date-time instead is taken as the exact bound ([from, to)).
Default: the previous day. Exits 1 when it found a discrepancy (and alerts), 0 when none."""

from datetime import date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from console.reconciliation import day_start, default_range, reconcile


def _bound(text: str, *, end: bool) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise CommandError(f"{text!r} is neither a date (2026-11-01) nor an ISO date-time") from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment)
    return day_start(day + timedelta(days=1) if end else day)


class Command(BaseCommand):
    help = "Reconcile the database with the chain, the exchange's records and its own sums for a range."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="date_from", help="first day (2026-11-01) or an ISO date-time")
        parser.add_argument("--to", dest="date_to", help="last day, included (2026-11-23) or an ISO date-time")

    def handle(self, *args: Any, **options: Any) -> None:
        default_start, default_end = default_range()
        start = _bound(options["date_from"], end=False) if options["date_from"] else default_start
        if options["date_to"]:
            end = _bound(options["date_to"], end=True)
        else:
            end = default_end if not options["date_from"] else day_start(timezone.localdate() + timedelta(days=1))
        if end <= start:
            raise CommandError("--to is before --from")
        run = reconcile(start=start, end=end, triggered_by="command")
        summary = run.summary
        self.stdout.write(
            f"reconciliation #{run.pk} {start.isoformat()} - {end.isoformat()}: "
            f"{summary['exchange']['checked']} exchanges, {summary['internal']['conversions']} conversions and "
            f"{summary['internal']['payouts']} payouts summed"
        )
        for name, chain in summary["chains"].items():
            self.stdout.write(
                f"  {name}: blocks {chain.get('from_block')}-{chain.get('to_block')}, "
                f"{chain.get('transactions')} hot-wallet transactions"
            )
            for total, row in chain.get("totals", {}).items():
                self.stdout.write(
                    f"    {total}: chain {row['chain']} {row['unit']}, recorded {row['recorded']} {row['unit']}"
                )
        for item in summary["discrepancies"]:
            where = f"{item['object_kind']} #{item['object_id']}" if item["object_kind"] else ""
            where += f" on {item['chain']}" if item.get("chain") else ""
            self.stdout.write(
                f"  DISCREPANCY [{item['check']}] {item['what']} {where} {item['tx_hash']} "
                f"expected: {item['expected']} found: {item['found']}"
            )
        self.stdout.write(f"{run.discrepancy_count} discrepancies")
        if run.discrepancy_count:
            raise SystemExit(1)
