"""Write docs/alerts.md from the alert catalogue (`--check`: exit 1 if it differs instead)."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from pgp_project.operations.alerts import ALERT_DOCS_PATH, alert_docs_markdown


class Command(BaseCommand):
    help = "Generate docs/alerts.md from the alert catalogue every app registers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Only compare; exit 1 if the file is out of date.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.BASE_DIR) / ALERT_DOCS_PATH
        wanted = alert_docs_markdown()
        if options["check"]:
            if not path.exists() or path.read_text() != wanted:
                raise CommandError(f"{ALERT_DOCS_PATH} is out of date: run `manage.py alert_docs`")
            self.stdout.write(f"{ALERT_DOCS_PATH} is up to date")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
        self.stdout.write(f"wrote {ALERT_DOCS_PATH}")
