from typing import cast

from django.apps import AppConfig
from django.conf import settings


class ConsoleConfig(AppConfig):
    """The operator's console: the overview, the needs-attention queue, reconciliation, statements
    and metrics. It reads every domain app and owns no money: the top of the production layers."""

    name = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        from django.contrib import admin

        from pgp_project.admin_site import PgpAdminSite
        from pgp_project.operations.alerts import register_alerts
        from pgp_project.operations.beat_schedule import DefaultJob, register_default_job

        from . import reconciliation_admin
        from .alerts import CONSOLE_ALERTS
        from .tasks import RECONCILE_PREVIOUS_DAY_TASK, REFRESH_HOT_WALLET_TASK
        from .views import attention_queue, overview_context

        # The overview is the admin's home page; the queue is one page of the admin, linked
        # from every page's header (PgpAdminSite.each_context).
        site = cast(PgpAdminSite, admin.site)  # installed as the default site by pgp_project.admin_apps
        site.set_index("console/index.html", overview_context)
        site.add_page("console/attention/", attention_queue, site.ATTENTION_QUEUE)
        reconciliation_admin.register()
        register_alerts(*CONSOLE_ALERTS)
        register_default_job(
            DefaultJob(
                name="Refresh hot-wallet balances",
                task=REFRESH_HOT_WALLET_TASK,
                every_seconds=settings.PGP_HOT_WALLET_REFRESH_SECONDS,
                description="Reads the hot wallet's balances and the fee rate on every chain for the overview, "
                "which never asks the node itself.",
            )
        )
        register_default_job(
            DefaultJob(
                name="Reconcile the previous day",
                task=RECONCILE_PREVIOUS_DAY_TASK,
                every_seconds=settings.PGP_RECONCILE_EVERY_SECONDS,
                description="The database against the chain, the exchange's records and its own sums, for the "
                "previous day; a discrepancy is alerted (reconciliation_discrepancy) and shown in the console.",
                money_job=True,  # off, a discrepancy between our books and the chain goes unseen
            )
        )
