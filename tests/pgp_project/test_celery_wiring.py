"""A real Celery worker process, on Redis and the test database, runs our periodic tasks."""

import os

import pytest
from django_celery_beat.models import PeriodicTask

from batching.tasks import check_threshold
from payouts.client_payouts import CHECK_CLIENT_PAYOUTS_TASK
from pgp_project.celery import app as celery_app
from pgp_project.operations.beat_schedule import default_jobs, ensure_default_schedule
from pgp_project.operations.models import JobHeartbeat
from pgp_project.operations.tasks import RECOVERY_SWEEP_TASK

from ..conftest import wait_until


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_runs_a_task_sent_through_redis(celery_worker_process) -> None:
    assert not JobHeartbeat.objects.filter(job_name="batching.check_threshold").exists()
    check_threshold.delay()
    heartbeat = wait_until(lambda: JobHeartbeat.objects.filter(job_name="batching.check_threshold").first(), 30)
    assert heartbeat.run_count == 1
    wait_until(lambda: JobHeartbeat.objects.get(pk=heartbeat.pk).last_finished_at is not None, 10)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_shows_inspectors_its_celery_settings_and_no_other(celery_worker_process, settings) -> None:
    """What Flower's worker page and `celery inspect conf` show: never a node URL, a key or any
    other Django setting, however Celery would have censored it."""

    # Only this session's worker counts: another test run may have workers on the same broker.
    def ours() -> list[dict]:
        shown = celery_app.control.inspect(timeout=2).conf() or {}
        return [reply for name, reply in shown.items() if name.startswith(f"pytest-{os.getpid()}-")]

    (conf,) = wait_until(ours, timeout=30)
    assert conf["CELERY_BROKER_URL"].startswith("redis://")
    assert conf["CELERY_TASK_ACKS_LATE"] is True
    for name in ("ETH_RPC_URL", "HOT_WALLET_PRIVATE_KEY", "NOWPAYMENTS_IPN_SECRET", "SECRET_KEY", "DATABASES"):
        assert name not in conf
    node_url = os.environ.get("ETH_RPC_URL") or settings.PGP_CHAINS["eth"]["rpc_url_default"]
    assert node_url not in str(conf)


def test_reliability_settings_are_in_force() -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.worker_send_task_events is True
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    registered = set(celery_app.tasks)
    assert {check_threshold.name, CHECK_CLIENT_PAYOUTS_TASK, RECOVERY_SWEEP_TASK} <= registered


@pytest.mark.django_db
def test_default_schedule_exists_and_operator_edits_survive_migrate() -> None:
    jobs = {job.name: job for job in default_jobs()}
    stored = {task.name: task for task in PeriodicTask.objects.filter(name__in=jobs)}
    assert set(stored) == set(jobs)
    assert stored["Micro-batch conversion check"].interval.every == 15 * 60
    assert stored["Client payout check"].interval.every == 5 * 60
    assert stored["Recovery sweep"].interval.every == 60
    assert stored["Prune refused IPN records"].interval.every == 24 * 60 * 60
    assert stored["Refresh reference prices"].interval.every == 5 * 60
    assert stored["Refresh hot-wallet balances"].interval.every == 60
    assert stored["Reconcile the previous day"].interval.every == 24 * 60 * 60
    assert stored["Webhook sweep"].interval.every == 10
    assert stored["Prune webhook history"].interval.every == 24 * 60 * 60
    assert stored["Prune API idempotency keys"].interval.every == 60 * 60
    assert stored["Fold status counts"].interval.every == 60
    celery_app.loader.import_default_modules()
    assert all(task.task in celery_app.tasks for task in stored.values())
    sweep = stored["Recovery sweep"]
    sweep.enabled = False
    sweep.save()
    ensure_default_schedule()
    ensure_default_schedule()
    assert PeriodicTask.objects.filter(name__in=jobs).count() == len(jobs) == 11
    assert PeriodicTask.objects.get(name="Recovery sweep").enabled is False
