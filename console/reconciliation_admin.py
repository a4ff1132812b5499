"""The console's reconciliation page and client statements, in the admin.

- *Operator console -> Reconciliation runs* is the reconciliation page: a date-range form that
  runs one now, the chosen run's report (totals, then each discrepancy with what, where, expected
  and found), and the history of runs (the daily job's and the operators').
- `statement/` under it: a client's statement (CSV) for a date range; the client page links to
  it, and the client list has an action for it.

Registered from ConsoleConfig.ready (the admin's autodiscovery has run by then), so the client
page keeps what the apps below added to it.
"""

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from payments.models import Client
from pgp_project.csv_export import csv_download
from pgp_project.money_display import chain_reference, format_amount, format_time
from pgp_project.operations.transient import TransientError

from .models import ReconciliationRun
from .reconciliation import NETWORK_FEES, day_start, reconcile
from .statements import statement_csv

OBJECT_ADMIN_URLS = {
    "host_payment": "admin:payouts_hostpayment_change",
    "conversion": "admin:batching_batchconversion_change",
    "payout": "admin:payouts_payoutbatch_change",
}
HISTORY_LENGTH = 30
STATEMENT_PERMISSION = "payments.view_client"


class DateRangeForm(forms.Form):
    """Whole days, both included, in the configured timezone."""

    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("date_from") and cleaned.get("date_to") and cleaned["date_to"] < cleaned["date_from"]:
            raise forms.ValidationError("The range ends before it starts.")
        return cleaned

    def range(self) -> tuple[Any, Any]:
        return day_start(self.cleaned_data["date_from"]), day_start(self.cleaned_data["date_to"] + timedelta(days=1))


class StatementForm(DateRangeForm):
    client = forms.ModelChoiceField(queryset=Client.objects.order_by("external_id"))
    field_order = ["client", "date_from", "date_to"]


def yesterday_initial() -> dict[str, date]:
    yesterday = timezone.localdate() - timedelta(days=1)
    return {"date_from": yesterday, "date_to": yesterday}


def discrepancy_rows(run: ReconciliationRun) -> list[dict[str, Any]]:
    rows = []
    for item in run.summary.get("discrepancies", []):
        where: list[SafeString | str] = []
        url_name = OBJECT_ADMIN_URLS.get(item.get("object_kind", ""))
        if url_name and item.get("object_id") is not None:
            try:
                url = reverse(url_name, args=[item["object_id"]])
                label = f"{item['object_kind'].replace('_', ' ')} #{item['object_id']}"
                where.append(format_html('<a href="{}">{}</a>', url, label))
            except NoReverseMatch:
                where.append(f"{item['object_kind']} #{item['object_id']}")
        if item.get("tx_hash"):
            where.append(chain_reference(item.get("chain", ""), "tx", item["tx_hash"]))
        rows.append({**item, "where": where})
    return rows


def chain_rows(run: ReconciliationRun) -> list[dict[str, Any]]:
    """Per chain scanned: its blocks, its transactions, and its totals, chain against database."""
    rows = []
    for chain, scanned in run.summary.get("chains", {}).items():
        totals = [
            {
                "label": "network fees" if name == NETWORK_FEES else f"{row['unit']} sent",
                "chain": format_amount(row["chain"], row["unit"]),
                "recorded": format_amount(row["recorded"], row["unit"]),
                "matches": row["chain"] == row["recorded"],
            }
            for name, row in scanned.get("totals", {}).items()
        ]
        rows.append({"chain": chain, **scanned, "totals": totals})
    return rows


class ReconciliationRunAdmin(admin.ModelAdmin):
    """The changelist is the reconciliation page; runs are records, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("statement/", self.admin_site.admin_view(self.statement_view), name="console_statement"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse("Forbidden", status=403)
        form = DateRangeForm(request.POST or None, initial=yesterday_initial())
        if request.method == "POST" and form.is_valid():
            start, end = form.range()
            try:
                run = reconcile(start=start, end=end, triggered_by=request.user.get_username())
            except TransientError as exc:  # the node or the exchange is down: nothing stored
                self.message_user(request, f"Reconciliation could not run: {exc}", messages.ERROR)
            else:
                level = messages.SUCCESS if run.discrepancy_count == 0 else messages.WARNING
                self.message_user(request, f"Reconciliation #{run.pk}: {run.discrepancy_count} discrepancies.", level)
                return HttpResponseRedirect(f"{request.path}?run={run.pk}")
        runs = list(ReconciliationRun.objects.all()[:HISTORY_LENGTH])
        chosen = request.GET.get("run", "")
        shown: ReconciliationRun | None = (
            get_object_or_404(ReconciliationRun, pk=int(chosen)) if chosen.isdigit() else (runs[0] if runs else None)
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation",
            "opts": self.model._meta,
            "form": form,
            "runs": runs,
            "run": shown,
            "discrepancies": discrepancy_rows(shown) if shown else [],
            "chains": chain_rows(shown) if shown else [],
            "ran_at": format_time(shown.ran_at) if shown else "",
            "range_start": format_time(shown.range_start) if shown else "",
            "range_end": format_time(shown.range_end) if shown else "",
            "statement_url": reverse("admin:console_statement"),
        }
        return TemplateResponse(request, "console/reconciliation.html", context)

    def statement_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(STATEMENT_PERMISSION):
            return HttpResponse("Forbidden", status=403)
        initial: dict[str, Any] = yesterday_initial()
        if request.GET.get("client", "").isdigit() and "date_from" not in request.GET:
            initial["client"] = int(request.GET["client"])
        form = StatementForm(request.GET if "date_from" in request.GET else None, initial=initial)
        if form.is_valid():
            client: Client = form.cleaned_data["client"]
            start, end = form.range()
            name = f"statement-{client.external_id}-{form.cleaned_data['date_from']}-{form.cleaned_data['date_to']}.csv"
            return csv_download(statement_csv(client, start, end), name)
        context = {
            **self.admin_site.each_context(request),
            "title": "Client statement",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "console/statement.html", context)


@admin.action(description="Download a statement (CSV) for the selected client")
def download_statement(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Client]) -> Any:
    if queryset.count() != 1:
        modeladmin.message_user(request, "Choose exactly one client for a statement.", messages.WARNING)
        return None
    client = queryset.get()
    return HttpResponseRedirect(f"{reverse('admin:console_statement')}?client={client.pk}")


def register() -> None:
    """The reconciliation page, and the client page with its statement link and action added to
    whatever the apps below made of it."""
    if not admin.site.is_registered(ReconciliationRun):
        admin.site.register(ReconciliationRun, ReconciliationRunAdmin)
    if not admin.site.is_registered(Client):
        return
    base: Any = type(admin.site.get_model_admin(Client))
    if getattr(base, "has_statement", False):
        return

    class ClientWithStatementAdmin(base):
        has_statement = True
        actions = [*(base.actions or []), download_statement]
        readonly_fields = (*base.readonly_fields, "statement")

        @admin.display(description="statement")
        def statement(self, obj: Client) -> SafeString | str:
            if obj.pk is None:
                return "-"
            url = f"{reverse('admin:console_statement')}?client={obj.pk}"
            return format_html('<a href="{}">Statement (CSV) for a date range</a>', url)

    ClientWithStatementAdmin.__name__ = f"{base.__name__}WithStatement"
    admin.site.unregister(Client)
    admin.site.register(Client, ClientWithStatementAdmin)
