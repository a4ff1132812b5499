"""Admin building blocks shared by the apps."""

from collections.abc import Iterable, Sequence

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from pgp_project.operations.state_machine import history


class ReadOnlyAdminMixin:
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


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, empty: str = "none") -> SafeString | str:
    """A small read-only table for an admin change page (values are escaped)."""
    body = [format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", ((cell,) for cell in row))) for row in rows]
    if not body:
        return empty
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    return format_html(
        "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        head,
        format_html_join("", "{}", ((row,) for row in body)),
    )


def history_table(subject: str, pk: int | None) -> SafeString | str:
    """The audit trail of one object: every transition and operator action, oldest first."""
    if pk is None:
        return "-"
    return html_table(
        ("when", "who", "what", "from", "to", "why"),
        (
            (
                f"{event.created_at:%Y-%m-%d %H:%M:%S %Z}",
                event.actor_label,
                event.action,
                event.from_status,
                event.to_status,
                event.reason,
            )
            for event in history(subject, pk)
        ),
        empty="no events yet",
    )
