"""Admin building blocks shared by the apps: read-only admins, small tables, the one timeline of
an object, status lines with their reason and last error, money and time columns formatted
through `money_display`, and a from/to date-range list filter.

Every page that uses them loads `admin_extras/admin_extras.css` and `admin_extras/copy.js`
(static files: the Content-Security-Policy allows no inline script or style)."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as datetime_time
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import DateTimeField, Model, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from pgp_project.money_display import format_amount, format_time
from pgp_project.operations.state_machine import history


class AdminExtrasMedia:
    """The stylesheet of the timeline and status lines, and the copy button of every shortened
    hash or address (`data-copy`), as static files."""

    class Media:
        css = {"all": ("admin_extras/admin_extras.css",)}
        js = ("admin_extras/copy.js",)


class ReadOnlyAdminMixin(AdminExtrasMedia):
    """Money and statuses are never edited by hand: no add, change or delete in the admin.

    Changes go through services, exposed as admin actions that check their own permission.
    """

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True


def html_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str = "none", css_class: str = ""
) -> SafeString | str:
    """A small read-only table for an admin change page (values are escaped)."""
    body = [format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", ((cell,) for cell in row))) for row in rows]
    if not body:
        return empty
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    return format_html(
        '<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        css_class or "panel",
        head,
        format_html_join("", "{}", ((row,) for row in body)),
    )


def admin_link(app_model: str, pk: int | None, label: object) -> SafeString | str:
    """A link to an object's admin change page by URL name ("batching_batchconversion"): an app
    may link to a higher app's page this way without importing it."""
    if pk is None:
        return "-"
    try:
        url = reverse(f"admin:{app_model}_change", args=[pk])
    except NoReverseMatch:
        return str(label)
    return format_html('<a href="{}">{}</a>', url, label)


# --- the timeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an object's timeline: an audit event, or another dated fact about it (an IPN
    received, say). `who` is a person's name or "system"."""

    when: datetime
    who: str
    what: str
    from_status: str = ""
    to_status: str = ""
    why: str = ""


def audit_entries(subject: str, pk: int) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            when=event.created_at,
            who=event.actor_label,
            what=event.action,
            from_status=event.from_status,
            to_status=event.to_status,
            why=event.reason,
        )
        for event in history(subject, pk)
    ]


def timeline_table(entries: Iterable[TimelineEntry], *, subject: str = "") -> SafeString | str:
    """The one timeline every page shows, oldest first: when (to the second, with its timezone),
    who (a person, or "system"), what, from, to, why."""
    ordered = sorted(entries, key=lambda entry: entry.when)
    if not ordered:
        return format_html('<p class="timeline timeline-empty" data-subject="{}">no events yet</p>', subject)
    rows = format_html_join(
        "",
        '<tr class="timeline-event"><td class="timeline-when"><time datetime="{}">{}</time></td>'
        '<td class="timeline-who">{}</td><td class="timeline-what">{}</td><td class="timeline-from">{}</td>'
        '<td class="timeline-to">{}</td><td class="timeline-why">{}</td></tr>',
        (
            (
                entry.when.isoformat(),
                format_time(entry.when),
                entry.who,
                entry.what,
                entry.from_status or "-",
                entry.to_status or "-",
                entry.why or "-",
            )
            for entry in ordered
        ),
    )
    return format_html(
        '<table class="timeline" data-subject="{}"><thead><tr><th>when</th><th>who</th><th>what</th>'
        "<th>from</th><th>to</th><th>why</th></tr></thead><tbody>{}</tbody></table>",
        subject,
        rows,
    )


def history_table(subject: str, pk: int | None, *, extra: Iterable[TimelineEntry] = ()) -> SafeString | str:
    """The audit trail of one object (every transition and operator action), with any `extra`
    dated facts merged in, oldest first."""
    if pk is None:
        return "-"
    return timeline_table([*audit_entries(subject, pk), *extra], subject=subject)


# --- status lines ----------------------------------------------------------------------------


def status_line(
    status: str,
    *,
    label: str = "",
    reason: str = "",
    last_error: str = "",
    attempts: int = 0,
    next_action_at: datetime | None = None,
    extra: str = "",
) -> SafeString:
    """A status as an operator needs it: the status itself, why it is there, and what went wrong
    last (with the attempts so far and when it is tried next), each only when there is one."""
    parts = [format_html('<span class="status status-{}">{}</span>', status, label or status)]
    if reason:
        parts.append(format_html('<span class="status-reason">{}</span>', reason))
    if extra:
        parts.append(format_html('<span class="status-extra">{}</span>', extra))
    if last_error:
        tries = f" (after {attempts} attempt{'s' if attempts != 1 else ''})" if attempts else ""
        parts.append(format_html('<span class="last-error">last error{}: {}</span>', tries, last_error))
    elif attempts:
        parts.append(format_html('<span class="attempts">{} attempt(s)</span>', attempts))
    if next_action_at is not None:
        parts.append(format_html('<span class="next-action">next try {}</span>', format_time(next_action_at)))
    return format_html('<span class="status-line">{}</span>', format_html_join(" ", "{}", ((p,) for p in parts)))


# --- money and time columns ------------------------------------------------------------------

Unit = str | Callable[[Any], str]


def money_column(field: str, unit: Unit, description: str | None = None) -> Callable[[Any, Any], str]:
    """A list column or read-only field showing `field` as money with its unit (`format_amount`);
    `unit` is fixed ("USDT") or read from the object (a callable). Sorts by the raw field."""

    def show(model_admin: Any, obj: Any) -> str:
        amount: Decimal | None = getattr(obj, field)
        return format_amount(amount, unit(obj) if callable(unit) else unit)

    show.__name__ = f"{field}_shown"
    return admin.display(description=description or field.replace("_", " "), ordering=field)(show)


def time_column(field: str, description: str | None = None) -> Callable[[Any, Any], str]:
    """A list column or read-only field showing a time to the second with its timezone."""

    def show(model_admin: Any, obj: Any) -> str:
        return format_time(getattr(obj, field))

    show.__name__ = f"{field}_shown"
    return admin.display(description=description or field.replace("_", " "), ordering=field)(show)


# --- a from/to date-range list filter ----------------------------------------------------------


def _midnight(day: date) -> datetime:
    """The start of `day` in the current timezone (the day an operator means)."""
    return timezone.make_aware(datetime.combine(day, datetime_time.min))


class DateRangeFilter(admin.FieldListFilter):
    """Filter a list by a date or time field from one day to another (both included), with two
    date inputs in the filter sidebar; no script. Use as `list_filter = (("created_at",
    DateRangeFilter),)`. A bound that is not a date is ignored."""

    template = "admin/pgp/date_range_filter.html"

    def __init__(
        self, field: Any, request: HttpRequest, params: dict, model: type[Model], model_admin: Any, field_path: str
    ) -> None:
        self.parameter_from = f"{field_path}__range__gte"
        self.parameter_to = f"{field_path}__range__lte"
        super().__init__(field, request, params, model, model_admin, field_path)

    def expected_parameters(self) -> list[str | None]:
        return [self.parameter_from, self.parameter_to]

    def _bound(self, parameter: str) -> date | None:
        values = self.used_parameters.get(parameter) or []
        value = values[-1] if isinstance(values, list) and values else values
        try:
            return parse_date(str(value)) if value else None
        except ValueError:
            return None

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        start, end = self._bound(self.parameter_from), self._bound(self.parameter_to)
        if not isinstance(self.field, DateTimeField):
            if start is not None:
                queryset = queryset.filter(**{f"{self.field_path}__gte": start})
            if end is not None:
                queryset = queryset.filter(**{f"{self.field_path}__lte": end})
            return queryset
        # The days' bounds as instants (midnight in the current timezone), compared with the
        # column itself: an index serves that, where `__date` would convert every row first.
        if start is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": _midnight(start)})
        if end is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": _midnight(end + timedelta(days=1))})
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        start, end = self._bound(self.parameter_from), self._bound(self.parameter_to)
        mine = {self.parameter_from, self.parameter_to}
        yield {
            "field_path": self.field_path,
            "from_name": self.parameter_from,
            "to_name": self.parameter_to,
            "from_value": start.isoformat() if start else "",
            "to_value": end.isoformat() if end else "",
            "hidden": [(name, value) for name, value in changelist.params.items() if name not in mine],
            "reset_url": changelist.get_query_string(remove=list(mine)),
            "active": bool(start or end),
        }
