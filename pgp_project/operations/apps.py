from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class OperationsConfig(AppConfig):
    """The kernel's operator concerns: runtime settings, job heartbeats, health, the periodic
    schedule, the audit trail of state machines, and the recovery of registered flows. It knows
    no domain app: the apps register their flows and periodic jobs with it."""

    name = "pgp_project.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
        from .access_control import register_access_subjects
        from .alerts import KERNEL_ALERTS, register_alerts
        from .attention import register_attention_source
        from .beat_schedule import DefaultJob, ensure_default_schedule, register_default_job
        from .models import RuntimeSettings
        from .money_jobs import register_money_job_controls
        from .pending_changes import PENDING_CHANGES_SOURCE, register_guarded_fields
        from .tasks import FOLD_STATUS_COUNTS_TASK, RECOVERY_SWEEP_TASK

        # Every runtime limit is a money control: a change applies once a second person confirms it.
        register_guarded_fields(
            "runtime_settings",
            RuntimeSettings,
            {
                name: "operations.change_runtime_limits"
                for name in (
                    "payout_approval_limit_usdt",
                    "default_fee_percent",
                    "micro_batch_threshold_usd",
                )
            },
        )
        # So is disabling or re-timing a money job (those registered with money_job=True).
        register_money_job_controls()
        register_attention_source(PENDING_CHANGES_SOURCE)
        # Administering people is a money control: accounts and groups are guarded subjects too.
        register_access_subjects()

        register_alerts(*KERNEL_ALERTS)
        register_default_job(
            DefaultJob(
                name="Recovery sweep",
                task=RECOVERY_SWEEP_TASK,
                every_seconds=settings.PGP_RECOVERY_SWEEP_SECONDS,
                description="Re-drives overdue batches and host payments; moves expired ones on with an alert.",
                money_job=True,  # off, a stuck batch or send is never re-driven nor alerted
            )
        )
        register_default_job(
            DefaultJob(
                name="Fold status counts",
                task=FOLD_STATUS_COUNTS_TASK,
                every_seconds=settings.PGP_FOLD_STATUS_COUNTS_SECONDS,
                description="Adds the batches' and host payments' recorded changes by status to their totals, "
                "which /metrics reads instead of counting those tables.",
            )
        )
        # After migrate, so a fresh database always has the default periodic jobs.
        post_migrate.connect(ensure_default_schedule, sender=self)
