"""/metrics: for operators only, and its numbers are what the database records."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from prometheus_client.parser import text_string_to_metric_families

from console.models import HotWalletSnapshot
from payments.models import IpnEventCount, IpnOutcome, PaymentEvent, PayoutStrategy
from payments.retention import prune_rejected_ipn_events
from payouts.exchange_batches.states import BatchStatus
from payouts.models import PayoutBatch
from pgp_project.operations.models import AuditEvent

from ..conftest import ipn_body, post_ipn
from ..factories import ClientFactory, PayoutBatchFactory, StaffUserFactory

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-the-tests-0123456789"


def samples(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_need_a_staff_session_or_the_token(settings) -> None:
    settings.PGP_METRICS_TOKEN = TOKEN
    assert HttpClient().get("/metrics").status_code == 403
    for wrong in (f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN):
        assert HttpClient(HTTP_AUTHORIZATION=wrong).get("/metrics").status_code == 403
    assert HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics").status_code == 200
    not_staff = HttpClient()
    not_staff.force_login(StaffUserFactory(username="customer", is_staff=False, is_superuser=False))
    assert not_staff.get("/metrics").status_code == 403
    staff = HttpClient()
    staff.force_login(StaffUserFactory(username="operator"))
    assert staff.get("/metrics").status_code == 200
    # No token configured: no token opens it.
    settings.PGP_METRICS_TOKEN = ""
    assert HttpClient(HTTP_AUTHORIZATION="Bearer ").get("/metrics").status_code == 403


def test_ipns_by_result_batches_and_attention_match_the_database(settings) -> None:
    settings.PGP_METRICS_TOKEN = TOKEN
    ClientFactory.create(external_id="-1001234567890", payout_strategy=PayoutStrategy.THRESHOLD)
    http = HttpClient()
    for payment_id in (1, 2, 3):
        assert post_ipn(http, ipn_body(payment_id=payment_id)).status_code == 200
    assert post_ipn(http, ipn_body(payment_id=1)).status_code == 200  # the same again: duplicate
    assert post_ipn(http, ipn_body(payment_id=4), signature="00" * 64).status_code == 401
    assert post_ipn(http, ipn_body(payment_id=5), signature=None).status_code == 401
    PayoutBatchFactory.create(status=BatchStatus.FAILED, review_reason="a test", last_error="boom", attempts=3)

    found = samples(HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics"))
    assert found[("pgp_ipn_events_total", (("outcome", "applied"),))] == 3
    assert found[("pgp_ipn_events_total", (("outcome", "duplicate"),))] == 1
    assert found[("pgp_ipn_events_total", (("outcome", "rejected_signature"),))] == 2
    assert found[("pgp_ipn_events_total", (("outcome", "stale"),))] == 0
    assert found[("pgp_batches", (("kind", "payout"), ("status", "failed")))] == 1
    assert found[("pgp_batches", (("kind", "conversion"), ("status", "created")))] == 0
    assert found[("pgp_failed_items", (("kind", "payout"),))] == 1
    assert found[("pgp_step_attempts", (("kind", "payout"),))] == 3
    assert found[("pgp_host_payments", (("status", "confirmed"),))] == 0
    assert found[("pgp_needs_attention_items", ())] >= 1
    assert found[("pgp_oldest_open_item_age_seconds", (("kind", "payout"),))] >= 0
    assert Decimal(str(found[("pgp_oldest_open_item_age_seconds", (("kind", "conversion"),))])) == 0


def test_ipn_counts_are_counters_the_retention_job_cannot_lower(settings) -> None:
    settings.PGP_METRICS_TOKEN = TOKEN
    http = HttpClient()
    assert post_ipn(http, ipn_body(payment_id=7), signature="00" * 64).status_code == 401
    assert post_ipn(http, ipn_body(payment_id=8, payment_status="cancelled")).status_code == 200  # undocumented
    scrape = HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    before = samples(scrape.get("/metrics"))
    assert before[("pgp_ipn_events_total", (("outcome", "rejected_signature"),))] == 1
    assert before[("pgp_ipn_events_total", (("outcome", "unknown_status"),))] == 1

    prune_rejected_ipn_events(retention_days=0)
    assert not PaymentEvent.objects.filter(outcome=IpnOutcome.REJECTED_SIGNATURE).exists()
    after = samples(scrape.get("/metrics"))
    assert after[("pgp_ipn_events_total", (("outcome", "rejected_signature"),))] == 1
    # Counted on this connection's shard, summed over shards: one row per outcome here.
    assert IpnEventCount.objects.filter(outcome=IpnOutcome.REJECTED_SIGNATURE).get().total == 1


def test_hot_wallet_periodic_jobs_and_attention_ages_for_the_alerting_rules(settings) -> None:
    settings.PGP_METRICS_TOKEN = TOKEN
    settings.PGP_ATTENTION_DEADLINES = {"payout_in_review": 60}
    chain = next(iter(settings.PGP_CHAINS))
    settings.PGP_CHAINS = {**settings.PGP_CHAINS, chain: {**settings.PGP_CHAINS[chain], "low_balance": {"eth": "2.5"}}}
    read_at = timezone.now() - timedelta(minutes=3)
    HotWalletSnapshot.objects.update_or_create(
        chain=chain, defaults={"balances": {"eth": "1.25", "usdt": "10.000001"}, "fetched_at": read_at}
    )
    failed = PayoutBatchFactory.create(status=BatchStatus.FAILED, review_reason="a test")
    two_hours_ago = timezone.now() - timedelta(hours=2)
    PayoutBatch.objects.filter(pk=failed.pk).update(created_at=two_hours_ago, updated_at=two_hours_ago)
    AuditEvent.objects.filter(subject_id=failed.pk, to_status=BatchStatus.FAILED).update(created_at=two_hours_ago)
    sweep = PeriodicTask.objects.get(task="operations.recovery_sweep")
    PeriodicTask.objects.filter(pk=sweep.pk).update(last_run_at=read_at)

    found = samples(HttpClient(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics"))
    assert found[("pgp_hot_wallet_balance", (("asset", "eth"), ("chain", chain)))] == 1.25
    assert found[("pgp_hot_wallet_low_balance_floor", (("asset", "eth"), ("chain", chain)))] == 2.5
    assert found[("pgp_hot_wallet_read_timestamp_seconds", (("chain", chain),))] == read_at.timestamp()
    labels = (("name", sweep.name), ("task", sweep.task))
    assert found[("pgp_periodic_task_last_run_timestamp_seconds", labels)] == read_at.timestamp()
    assert found[("pgp_periodic_task_interval_seconds", labels)] == sweep.interval.every
    # The batch in review has waited since it entered review.
    age = found[("pgp_needs_attention_oldest_age_seconds", (("reason", "payout_in_review"),))]
    assert 2 * 3600 - 5 < age < 2 * 3600 + 60
    assert found[("pgp_needs_attention_deadline_seconds", (("reason", "payout_in_review"),))] == 60
    assert found[("pgp_needs_attention_deadline_seconds", (("reason", "payment_held"),))] == 4 * 3600
    assert found[("pgp_needs_attention_oldest_age_seconds", (("reason", "payment_held"),))] == 0
