"""The Celery app: configured from the CELERY_ Django settings only (pgp_project/celery_config.py),
tasks autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pgp_project.settings.production")

app = Celery("pgp_project")
app.config_from_object("pgp_project.celery_config", namespace="CELERY")
app.autodiscover_tasks()
