"""What needs a person right now: one registry of attention sources, one per kind of thing that
waits for an operator (a held payment, a payout awaiting approval, a batch in review...). The apps
that know register them from `AppConfig.ready`; the kernel knows none of them.

Each source answers two questions from the same query: how many (a COUNT, cheap enough for
/health/ and the admin header on every page), and which ones (a bounded list of items, newest
`limit` per kind, for the operators' needs-attention queue). The count and the list therefore
always agree.

/health/ reports the total and the breakdown by kind; it never makes the system unhealthy: a
batch in review is work for an operator, not an outage.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Min, Model, QuerySet

DEFAULT_ITEMS_PER_KIND = 200


@dataclass(frozen=True)
class AttentionItem:
    """One thing that waits for a person, as the queue shows it."""

    kind: str  # the source's kind: "payment_held", "payout_awaiting_approval", ...
    title: str  # the object's name: "payout #12 to Threshold channel"
    url: str  # the object's admin page
    since: datetime | None  # since when it has been in this state
    reason: str  # why it waits
    last_error: str  # the last refusal or failure recorded on it, if any
    action_label: str  # what resolves it: the admin action's name, or what to do
    action_url: str  # one click away: the page where that action is taken


@dataclass(frozen=True)
class AttentionSource:
    kind: str
    label: str  # "Payments held for review"
    count: Callable[[], int]
    items: Callable[[int], list[AttentionItem]]  # at most `limit` items, the newest first
    # How many, and since when the longest-waiting one has waited (None: none waits, or not
    # known), for /metrics at every scrape; None: the count alone.
    tally: Callable[[], tuple[int, datetime | None]] | None = None


_SOURCES: dict[str, AttentionSource] = {}

AttentionCounter = Callable[[], dict[str, int]]
_COUNTERS: list[AttentionCounter] = []


def register_attention_source(source: AttentionSource) -> None:
    """One source per kind; registering the same kind again replaces it (a reload)."""
    _SOURCES[source.kind] = source


def queryset_source(
    kind: str,
    label: str,
    rows: Callable[[], QuerySet[Any]],
    item: Callable[[Any], AttentionItem],
    *,
    newest_first: Iterable[str] = ("-pk",),
    since_field: str = "",
) -> AttentionSource:
    """A source whose count and items come from one queryset: `rows()` selects exactly the
    objects that need a person, `item(row)` describes one. Its items' `since` is the queryset's
    `since` annotation when it has one, else the field `since_field` (what `item` reads)."""

    def count() -> int:
        return int(rows().order_by().count())

    def items(limit: int) -> list[AttentionItem]:
        return [item(row) for row in rows().order_by(*newest_first)[:limit]]

    def tally() -> tuple[int, datetime | None]:
        # The count and the longest wait in one query, as the queue would show them.
        queryset = rows().order_by()
        if "since" not in queryset.query.annotations:
            if not since_field:
                first = rows().order_by(*(_reversed(field) for field in newest_first)).first()
                return count(), item(first).since if first is not None else None
            queryset = queryset.annotate(since=F(since_field))
        found = queryset.aggregate(n=Count("pk"), oldest=Min("since"))
        return int(found["n"]), found["oldest"]

    return AttentionSource(kind=kind, label=label, count=count, items=items, tally=tally)


def _reversed(ordering: str) -> str:
    return ordering[1:] if ordering.startswith("-") else f"-{ordering}"


def attention_sources() -> list[AttentionSource]:
    return list(_SOURCES.values())


def register_attention_counter(counter: AttentionCounter) -> None:
    """A bare counter with no items (kept for counts that have no queue entry)."""
    if counter not in _COUNTERS:
        _COUNTERS.append(counter)


def attention_counts() -> dict[str, int]:
    """Count per kind: one COUNT query per source."""
    breakdown = {source.kind: source.count() for source in _SOURCES.values()}
    for counter in _COUNTERS:
        breakdown.update(counter())
    return breakdown


def attention_tally() -> dict[str, tuple[int, datetime | None]]:
    """Per kind: how many, and since when the longest-waiting one has waited (None: nothing
    waits, or a bare counter's). One query per source that tallies itself."""
    found = {
        source.kind: source.tally() if source.tally is not None else (source.count(), None)
        for source in _SOURCES.values()
    }
    for counter in _COUNTERS:
        found.update({kind: (number, None) for kind, number in counter().items()})
    return found


def attention_deadline_seconds(kind: str) -> int:
    """How long an item of this kind may wait for a person before it is overdue."""
    return int(settings.PGP_ATTENTION_DEADLINES.get(kind, settings.PGP_ATTENTION_DEADLINE_SECONDS))


def needs_attention() -> dict[str, object]:
    breakdown = attention_counts()
    return {"total": sum(breakdown.values()), "breakdown": breakdown}


def attention_items(*, limit_per_kind: int = DEFAULT_ITEMS_PER_KIND, kind: str | None = None) -> list[AttentionItem]:
    """Every item of every source (or of one kind), the longest-waiting first."""
    sources = [s for s in _SOURCES.values() if kind is None or s.kind == kind]
    found = [item for source in sources for item in source.items(limit_per_kind)]
    return sorted(found, key=lambda i: (i.since is None, i.since.timestamp() if i.since else 0.0, i.kind, i.title))


def admin_change_url(obj: Model) -> str:
    """The admin page of one object."""
    from django.urls import reverse

    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def admin_action_url(obj: Model) -> str:
    """The object's admin list, filtered to just this object: its admin actions are one choice
    and one click away there."""
    from django.urls import reverse

    opts = obj._meta
    return f"{reverse(f'admin:{opts.app_label}_{opts.model_name}_changelist')}?id__exact={obj.pk}"
