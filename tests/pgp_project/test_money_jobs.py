"""Disabling or re-timing a money job (reconciliation, reference prices, recovery sweep, payout and
conversion checks) needs a second person, through django_celery_beat's admin as operators use it:

- a change of a money job's enabled flag, schedule, task or arguments is only requested; it
  applies once a second staff member confirms it (never the requester), and Beat is told;
- the bulk enable/disable/toggle actions request it too; a money job's row cannot be deleted;
- the schedule row a money job runs on cannot be edited or deleted by one person;
- other periodic tasks edit as before; every request and decision is audited old -> new.
"""

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from console.tasks import RECONCILE_PREVIOUS_DAY_TASK
from pgp_project.operations.beat_schedule import default_jobs, ensure_default_schedule
from pgp_project.operations.models import AuditEvent, PendingChange
from pgp_project.operations.money_jobs import MONEY_JOB_SUBJECT, is_money_job
from pgp_project.operations.pending_changes import SelfConfirmationRefused, confirm_change, request_change

from ..people import logged_in, staff

pytestmark = pytest.mark.django_db

RECONCILIATION = "Reconcile the previous day"
PRUNING = "Prune refused IPN records"  # not a money job
TASK_ADMIN = "admin:django_celery_beat_periodictask_change"
TASK_LIST = "admin:django_celery_beat_periodictask_changelist"
PENDING_CHANGES = "admin:operations_pendingchange_changelist"
BEAT_EDITOR = (
    "django_celery_beat.view_periodictask",
    "django_celery_beat.change_periodictask",
    "django_celery_beat.add_periodictask",
    "django_celery_beat.delete_periodictask",
    "django_celery_beat.view_intervalschedule",
    "django_celery_beat.change_intervalschedule",
    "django_celery_beat.delete_intervalschedule",
)


def task_form(row: PeriodicTask, /, **changes: str | None) -> dict[str, str]:
    """The periodic task change form as the admin posts it; a change to None unticks a checkbox."""
    form = {
        "name": row.name,
        "regtask": "",
        "task": row.task,
        "description": row.description,
        "interval": "" if row.interval_id is None else str(row.interval_id),
        "crontab": "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "args": row.args,
        "kwargs": row.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": row.headers or "{}",
        "change_reason": "",
        **({"enabled": "on"} if row.enabled else {}),
    }
    for name, value in changes.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    return form


# The management form of a schedule page's inline list of the tasks that use it, for a schedule no task uses.
NO_INLINE_ROWS = {f"periodictask_set-{name}": "0" for name in ("TOTAL_FORMS", "INITIAL_FORMS")}


def beat_marker() -> Any:
    return PeriodicTasks.last_change()


@pytest.fixture
def alice() -> User:
    """Edits the schedule and may request a money job's change."""
    return staff("alice", *BEAT_EDITOR, "operations.change_money_jobs", "operations.confirm_change")


@pytest.fixture
def bob() -> User:
    return staff("bob", "operations.confirm_change")


@pytest.fixture
def reconciliation() -> PeriodicTask:
    return PeriodicTask.objects.get(name=RECONCILIATION)


def test_the_money_jobs_are_declared_at_registration() -> None:
    money = {job.name for job in default_jobs() if job.money_job}
    assert money == {
        "Reconcile the previous day",
        "Refresh reference prices",
        "Recovery sweep",
        "Client payout check",
        "Micro-batch conversion check",
    }
    stored = {
        task.name: is_money_job(task) for task in PeriodicTask.objects.filter(name__in=[j.name for j in default_jobs()])
    }
    assert {name for name, money_job in stored.items() if money_job} == money
    assert "operations.change_money_jobs" in settings.PGP_MONEY_PERMISSIONS


def test_disabling_the_reconciliation_needs_a_second_person(
    alice: User, bob: User, reconciliation: PeriodicTask
) -> None:
    http = logged_in(alice)
    before = beat_marker()
    page = http.post(
        reverse(TASK_ADMIN, args=[reconciliation.pk]),
        task_form(reconciliation, enabled=None, description="quiet week", change_reason="maintenance"),
        follow=True,
    )
    assert b"awaiting confirmation by a second staff member" in page.content
    reconciliation.refresh_from_db()
    assert reconciliation.enabled is True  # not yet
    assert reconciliation.description == "quiet week"  # the unguarded field saved at once
    change = PendingChange.objects.get()
    assert (change.subject_type, change.subject_id) == (MONEY_JOB_SUBJECT, reconciliation.pk)
    assert change.changes == {"enabled": {"old": "True", "new": "False"}}
    assert (change.requested_by, change.reason) == (alice, "maintenance")

    # Alice cannot confirm her own request, in the admin or through the service.
    refused = http.post(
        reverse(PENDING_CHANGES), {"action": "confirm_changes", "_selected_action": [change.pk]}, follow=True
    )
    assert b"a second staff member must confirm it" in refused.content
    with pytest.raises(SelfConfirmationRefused):
        confirm_change(change.pk, alice)
    reconciliation.refresh_from_db()
    assert reconciliation.enabled is True

    # Bob confirms: the job is off, and Beat's change marker moved so it re-reads the schedule.
    marker = beat_marker()
    confirmed = logged_in(bob).post(
        reverse(PENDING_CHANGES), {"action": "confirm_changes", "_selected_action": [change.pk]}, follow=True
    )
    assert b"applied" in confirmed.content
    reconciliation.refresh_from_db()
    assert reconciliation.enabled is False
    assert beat_marker() > marker >= before
    assert reconciliation.date_changed > change.requested_at

    events = AuditEvent.objects.filter(subject_type=MONEY_JOB_SUBJECT, subject_id=reconciliation.pk)
    assert list(events.values_list("action", "actor__username")) == [
        ("change_requested", "alice"),
        ("change_confirmed", "bob"),
    ]
    assert all("enabled: 'True' -> 'False'" in event.reason for event in events)
    # The history panel of the task shows both.
    history = logged_in(alice).get(reverse(TASK_ADMIN, args=[reconciliation.pk])).content.decode()
    assert "change_confirmed" in history
    assert "Money job: changes need a second person" in history


def test_re_timing_a_money_job_is_a_guarded_change(alice: User, bob: User, reconciliation: PeriodicTask) -> None:
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    daily_id = reconciliation.interval_id
    http = logged_in(alice)
    page = http.post(
        reverse(TASK_ADMIN, args=[reconciliation.pk]), task_form(reconciliation, interval=str(hourly.pk)), follow=True
    )
    assert b"awaiting confirmation" in page.content
    reconciliation.refresh_from_db()
    assert reconciliation.interval_id == daily_id
    change = PendingChange.objects.get()
    assert change.changes == {"interval": {"old": str(daily_id), "new": str(hourly.pk)}}
    assert "every hour" in change.reason  # the confirmer reads what the ids mean
    # Meanwhile the requested schedule row cannot be re-timed under the confirmer's feet.
    refused = http.post(
        reverse("admin:django_celery_beat_intervalschedule_change", args=[hourly.pk]),
        {"every": "1", "period": IntervalSchedule.SECONDS},
    )
    assert refused.status_code == 403
    hourly.refresh_from_db()
    assert (hourly.every, hourly.period) == (1, IntervalSchedule.HOURS)

    # Re-timing through a crontab, or moving its start, is a request as well.
    http.post(
        reverse(TASK_ADMIN, args=[reconciliation.pk]),
        task_form(
            reconciliation, start_time_0="2030-01-01", start_time_1="00:00:00", task="console.refresh_hot_wallet"
        ),
    )
    reconciliation.refresh_from_db()
    assert (reconciliation.start_time, reconciliation.task) == (None, RECONCILE_PREVIOUS_DAY_TASK)
    latest = PendingChange.objects.order_by("-pk").first()
    assert latest is not None
    assert set(latest.changes) == {"start_time", "task"}

    confirm_change(change.pk, bob)
    reconciliation.refresh_from_db()
    assert reconciliation.interval_id == hourly.pk


def test_one_person_without_the_permission_cannot_even_request(reconciliation: PeriodicTask) -> None:
    editor = staff("editor", *BEAT_EDITOR)
    http = logged_in(editor)
    page = http.get(reverse(TASK_ADMIN, args=[reconciliation.pk])).content.decode()
    assert 'name="enabled"' not in page  # read-only
    assert 'name="interval"' not in page
    assert 'name="regtask"' not in page
    response = http.post(
        reverse(TASK_ADMIN, args=[reconciliation.pk]),
        task_form(reconciliation, enabled=None, interval="", name="renamed reconciliation"),
    )
    assert response.status_code == 302
    reconciliation.refresh_from_db()
    assert (reconciliation.enabled, reconciliation.name) == (True, "renamed reconciliation")
    assert reconciliation.interval_id is not None
    assert not PendingChange.objects.exists()
    # A renamed money job is still present for the default schedule: migrate adds no second one.
    ensure_default_schedule()
    assert PeriodicTask.objects.filter(task=reconciliation.task).count() == 1


def test_the_bulk_actions_do_not_disable_a_money_job(alice: User, reconciliation: PeriodicTask) -> None:
    pruning = PeriodicTask.objects.get(name=PRUNING)
    selected = [reconciliation.pk, pruning.pk]
    for action in ("disable_tasks", "toggle_tasks"):
        PendingChange.objects.all().delete()
        page = logged_in(alice).post(reverse(TASK_LIST), {"action": action, "_selected_action": selected}, follow=True)
        assert b"awaiting confirmation by a second staff member" in page.content
        reconciliation.refresh_from_db()
        assert reconciliation.enabled is True
        assert PendingChange.objects.get().changes == {"enabled": {"old": "True", "new": "False"}}
        pruning.refresh_from_db()
        assert pruning.enabled is (action == "toggle_tasks")  # disabled, then toggled back on
    # Without the permission a money job is not changed, and the action says why.
    editor = staff("editor", *BEAT_EDITOR)
    page = logged_in(editor).post(
        reverse(TASK_LIST), {"action": "disable_tasks", "_selected_action": selected}, follow=True
    )
    assert b"money jobs: requesting this needs operations.change_money_jobs" in page.content
    reconciliation.refresh_from_db()
    pruning.refresh_from_db()
    assert (reconciliation.enabled, pruning.enabled) == (True, False)  # the other job changed at once
    # A viewer runs no action at all (django_celery_beat's own actions asked for no permission).
    viewer = staff("viewer", "django_celery_beat.view_periodictask")
    logged_in(viewer).post(reverse(TASK_LIST), {"action": "enable_tasks", "_selected_action": [pruning.pk]})
    pruning.refresh_from_db()
    assert pruning.enabled is False


def test_a_money_job_and_the_schedule_it_runs_on_are_not_deleted_or_edited(
    alice: User, reconciliation: PeriodicTask
) -> None:
    http = logged_in(alice)
    deleted = http.post(
        reverse("admin:django_celery_beat_periodictask_delete", args=[reconciliation.pk]), {"post": "yes"}
    )
    assert deleted.status_code == 403
    bulk = http.post(
        reverse(TASK_LIST), {"action": "delete_selected", "_selected_action": [reconciliation.pk], "post": "yes"}
    )
    assert bulk.status_code == 403
    interval = reconciliation.interval
    assert interval is not None
    edited = http.post(
        reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk]),
        {"every": "7", "period": IntervalSchedule.DAYS},
    )
    assert edited.status_code == 403
    page = http.get(reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk]))
    assert b"A money job runs on this schedule" in page.content
    schedule_deleted = http.post(
        reverse("admin:django_celery_beat_intervalschedule_delete", args=[interval.pk]), {"post": "yes"}
    )
    assert schedule_deleted.status_code == 403
    assert PeriodicTask.objects.filter(pk=reconciliation.pk, interval=interval, enabled=True).exists()
    interval.refresh_from_db()
    assert interval.every == 24 * 60 * 60


def test_other_periodic_tasks_and_schedules_edit_as_before() -> None:
    editor = staff("editor", *BEAT_EDITOR)
    pruning = PeriodicTask.objects.get(name=PRUNING)
    weekly = IntervalSchedule.objects.create(every=7, period=IntervalSchedule.DAYS)
    http = logged_in(editor)
    edited = http.post(
        reverse("admin:django_celery_beat_intervalschedule_change", args=[weekly.pk]),
        {"every": "14", "period": IntervalSchedule.DAYS, **NO_INLINE_ROWS},
    )
    assert edited.status_code == 302
    weekly.refresh_from_db()
    assert weekly.every == 14
    response = http.post(
        reverse(TASK_ADMIN, args=[pruning.pk]), task_form(pruning, enabled=None, interval=str(weekly.pk))
    )
    assert response.status_code == 302
    pruning.refresh_from_db()
    assert (pruning.enabled, pruning.interval_id) == (False, weekly.pk)
    deleted = http.post(reverse("admin:django_celery_beat_periodictask_delete", args=[pruning.pk]), {"post": "yes"})
    assert deleted.status_code == 302
    assert not PeriodicTask.objects.filter(pk=pruning.pk).exists()
    assert not PendingChange.objects.exists()
    # But pointing a task at a money job's task (a second copy of it) needs the permission.
    other = PeriodicTask.objects.get(name="Refresh hot-wallet balances")
    page = http.post(reverse(TASK_ADMIN, args=[other.pk]), task_form(other, task=RECONCILE_PREVIOUS_DAY_TASK))
    assert b"is a money job: scheduling it needs the permission operations.change_money_jobs" in page.content
    other.refresh_from_db()
    assert other.task != RECONCILE_PREVIOUS_DAY_TASK


def test_the_service_guards_only_money_jobs_and_refuses_a_job_without_schedule(
    alice: User, reconciliation: PeriodicTask
) -> None:
    pruning = PeriodicTask.objects.get(name=PRUNING)
    with pytest.raises(ValueError, match="not guarded"):
        request_change(PeriodicTask, pruning.pk, {"enabled": False}, user=alice)
    with pytest.raises(ValidationError):
        request_change(PeriodicTask, reconciliation.pk, {"interval": None}, user=alice)
    assert not PendingChange.objects.exists()
    # A foreign key is requested by row or by id alike, and recorded as the id.
    hourly = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    change = request_change(PeriodicTask, reconciliation.pk, {"interval": hourly}, user=alice)
    assert change is not None
    assert change.changes["interval"]["new"] == str(hourly.pk)
    assert request_change(PeriodicTask, reconciliation.pk, {"interval": reconciliation.interval_id}, user=alice) is None


def test_requesting_a_money_job_change_needs_a_totp_verified_session(settings: Any, alice: User) -> None:
    settings.PGP_REQUIRE_OTP_FOR_MONEY = True
    task = PeriodicTask.objects.get(name=RECONCILIATION)
    assert logged_in(alice).get(reverse(TASK_ADMIN, args=[task.pk])).status_code == 302  # to the login
    editor = staff("editor", *BEAT_EDITOR)  # no money permission: a password is enough, and it is read-only
    assert logged_in(editor).get(reverse(TASK_ADMIN, args=[task.pk])).status_code == 200


def test_a_copy_of_a_money_job_is_added_only_with_the_permission_and_audited(
    alice: User, reconciliation: PeriodicTask
) -> None:
    copy_form = task_form(reconciliation, name="Reconcile again", change_reason=None)
    add_url = reverse("admin:django_celery_beat_periodictask_add")
    editor = staff("editor", *BEAT_EDITOR)
    refused = logged_in(editor).post(add_url, copy_form)
    assert b"is a money job: scheduling it needs the permission operations.change_money_jobs" in refused.content
    assert not PeriodicTask.objects.filter(name="Reconcile again").exists()

    assert logged_in(alice).post(add_url, copy_form).status_code == 302
    added = PeriodicTask.objects.get(name="Reconcile again")
    assert is_money_job(added)  # guarded from now on, like the original
    created = AuditEvent.objects.get(subject_type=MONEY_JOB_SUBJECT, subject_id=added.pk)
    assert (created.action, created.actor) == ("created", alice)
    assert f"task: None -> '{RECONCILE_PREVIOUS_DAY_TASK}'" in created.reason

    # Pointing another task at it is the same: only with the permission, and audited.
    other = PeriodicTask.objects.get(name="Refresh hot-wallet balances")
    assert (
        logged_in(alice).post(reverse(TASK_ADMIN, args=[other.pk]), task_form(other, task=added.task)).status_code
        == 302
    )
    other.refresh_from_db()
    assert is_money_job(other)
    made = AuditEvent.objects.get(subject_type=MONEY_JOB_SUBJECT, subject_id=other.pk)
    assert (made.action, made.actor) == ("created", alice)
