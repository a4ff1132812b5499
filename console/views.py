"""The operator console's pages in the admin: the overview (the admin's home page) and the
needs-attention queue. They read; every action that moves money stays on the object's own admin
page, one click away."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince

from pgp_project.money_display import format_amount, format_time
from pgp_project.operations.attention import (
    DEFAULT_ITEMS_PER_KIND,
    attention_counts,
    attention_items,
    attention_sources,
)

from .hot_wallet import hot_wallet_views
from .selectors import client_balances, daily_activity, micro_batch_progress, money_by_state

CHART_DAYS = 14


def _amounts(by_currency: dict[str, Any]) -> str:
    return " + ".join(format_amount(v, "USDT" if c.startswith("usdt") else c) for c, v in by_currency.items())


def overview_context(request: HttpRequest) -> dict[str, Any]:
    """What the admin's home page shows above the list of models."""
    now = timezone.now()
    money = money_by_state(now)
    progress = micro_batch_progress()
    balances, client_count = client_balances()
    activity = daily_activity(CHART_DAYS, now)
    wallets = hot_wallet_views(now)
    return {
        "money_rows": [
            (
                "pending",
                "Pending (awaiting conversion)",
                f"{format_amount(money.pending_usd, 'USD')} net",
                f"{format_amount(money.pending_eth, 'ETH')} in {money.pending_rows} payment(s)",
            ),
            ("swapping", "Swapping (in a conversion)", format_amount(money.swapping_eth, "ETH"), ""),
            ("converted", "Converted, unclaimed client credit", format_amount(money.converted_usdt, "USDT"), ""),
            ("in-payout", "In payout", format_amount(money.in_payout_usdt, "USDT"), ""),
            ("held", "Held for review", format_amount(money.held_usd, "USD"), f"{money.held_rows} row(s)"),
            (
                "paid-today",
                "Paid out today",
                format_amount(money.paid_out_today_usdt, "USDT"),
                _amounts(money.instant_paid_today) and f"+ instant: {_amounts(money.instant_paid_today)}",
            ),
            (
                "paid-week",
                "Paid out, last 7 days",
                format_amount(money.paid_out_week_usdt, "USDT"),
                _amounts(money.instant_paid_week) and f"+ instant: {_amounts(money.instant_paid_week)}",
            ),
        ],
        "wallets": wallets,
        "progress": progress,
        "progress_pending": format_amount(progress.pending_net_usd, "USD"),
        "progress_threshold": format_amount(progress.threshold_usd, "USD"),
        "progress_eth": format_amount(progress.pending_eth, "ETH"),
        "clients": [
            {
                "name": b.name,
                "url": reverse("admin:payments_client_change", args=[b.client_id]),
                "converted": format_amount(b.converted_usdt, "USDT"),
                "converted_value": b.converted_usdt,
                "pending": format_amount(b.pending_usd, "USD"),
                "threshold": format_amount(b.threshold_usd, "USD"),
                "threshold_value": b.threshold_usd,
                "percent": b.percent,
            }
            for b in balances
        ],
        "client_count": client_count,
        "chart_data": {
            "days": [d.isoformat() for d in activity.days],
            "volume_usd": [str(v) for v in activity.volume_usd],
            "payments": activity.payments,
            "conversions": activity.conversions_completed,
            "payouts": activity.payouts_completed,
        },
        "chart_days": CHART_DAYS,
        "generated_at": format_time(now),
    }


def attention_queue(request: HttpRequest) -> HttpResponse:
    """Everything that waits for a person, the longest-waiting first (optionally one kind)."""
    kind = request.GET.get("kind") or None
    counts = attention_counts()
    sources = attention_sources()
    if kind not in {source.kind for source in sources}:
        kind = None
    now = timezone.now()
    items = [
        {
            "item": item,
            "since": format_time(item.since),
            "age": timesince(item.since, now) if item.since else "-",
        }
        for item in attention_items(kind=kind, limit_per_kind=DEFAULT_ITEMS_PER_KIND)
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Needs attention",
        "kinds": [
            {"kind": s.kind, "label": s.label, "count": counts.get(s.kind, 0)} for s in sources if counts.get(s.kind)
        ],
        "selected_kind": kind,
        "items": items,
        "total": sum(counts.values()),
        "per_kind": DEFAULT_ITEMS_PER_KIND,
    }
    return TemplateResponse(request, "console/attention.html", context)
