"""/metrics: for operators only, and its numbers are what the database records."""

from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families

from payments.models import PayoutStrategy
from payouts.exchange_batches.states import BatchStatus

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
    assert found[("pgp_ipn_events", (("outcome", "applied"),))] == 3
    assert found[("pgp_ipn_events", (("outcome", "duplicate"),))] == 1
    assert found[("pgp_ipn_events", (("outcome", "rejected_signature"),))] == 2
    assert found[("pgp_ipn_events", (("outcome", "stale"),))] == 0
    assert found[("pgp_batches", (("kind", "payout"), ("status", "failed")))] == 1
    assert found[("pgp_batches", (("kind", "conversion"), ("status", "created")))] == 0
    assert found[("pgp_failed_items", (("kind", "payout"),))] == 1
    assert found[("pgp_step_attempts", (("kind", "payout"),))] == 3
    assert found[("pgp_host_payments", (("status", "confirmed"),))] == 0
    assert found[("pgp_needs_attention_total", ())] >= 1
    assert found[("pgp_oldest_open_item_age_seconds", (("kind", "payout"),))] >= 0
    assert Decimal(str(found[("pgp_oldest_open_item_age_seconds", (("kind", "conversion"),))])) == 0
