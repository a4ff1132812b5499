from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OperationsConfig(AppConfig):
    """Cross-cutting operator concerns: runtime settings, job heartbeats, health, schedule."""

    name = "pgp_project.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from .beat_schedule import ensure_default_schedule

        # After migrate, so a fresh database always has the default periodic jobs.
        post_migrate.connect(ensure_default_schedule, sender=self)
