from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models import F
from django.utils import timezone

from .models import JobHeartbeat


@contextmanager
def job_heartbeat(job_name: str) -> Iterator[None]:
    """Record that a periodic job started and finished (upsert, safe under concurrency)."""
    now = timezone.now()
    updated = JobHeartbeat.objects.filter(job_name=job_name).update(last_started_at=now, run_count=F("run_count") + 1)
    if not updated:
        JobHeartbeat.objects.get_or_create(job_name=job_name, defaults={"last_started_at": now, "run_count": 1})
    yield
    JobHeartbeat.objects.filter(job_name=job_name).update(last_finished_at=timezone.now())
