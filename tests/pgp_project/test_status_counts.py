"""Rows by status kept by triggers: exact after any write (the ORM, a bulk UPDATE, a DELETE),
before and after a fold, and a save that moves nothing records nothing."""

import pytest
from django.db import connection
from django.db.models import Count, Model, Sum

from batching.models import BatchConversion
from payouts.exchange_batches.states import BatchStatus
from payouts.models import HostPayment, HostPaymentStatus, PayoutBatch
from pgp_project.operations.models import StatusCountChange
from pgp_project.operations.status_counts import Counted, fold_status_counts, status_counts

from ..factories import BatchConversionFactory, HostPaymentFactory, PayoutBatchFactory

pytestmark = pytest.mark.django_db


def counted_by_hand(model: type[Model]) -> dict[str, Counted]:
    rows = model._default_manager.values_list("status").annotate(n=Count("*"), a=Sum("attempts"))
    return {status: Counted(n, a) for status, n, a in rows}


def kept(model: type[Model]) -> dict[str, Counted]:
    """The trigger-kept counts, without the statuses whose rows all went elsewhere."""
    return {status: count for status, count in status_counts(model._meta.db_table).items() if count.rows}


def test_the_counts_follow_every_kind_of_write_and_survive_a_fold() -> None:
    PayoutBatchFactory.create_batch(3, status=BatchStatus.CREATED, attempts=1)
    failed = PayoutBatchFactory.create(status=BatchStatus.FAILED, review_reason="a test", attempts=4)
    BatchConversionFactory.create(status=BatchStatus.CREATED)
    HostPaymentFactory.create(status=HostPaymentStatus.CREATED, attempts=2)
    for model in (PayoutBatch, BatchConversion, HostPayment):
        assert kept(model) == counted_by_hand(model)

    PayoutBatch.objects.filter(status=BatchStatus.CREATED).update(status=BatchStatus.CANCELLED)  # a bulk UPDATE
    failed.attempts = 5
    failed.save()  # the ORM, every column: only the attempts moved
    assert kept(PayoutBatch) == counted_by_hand(PayoutBatch)
    assert kept(PayoutBatch)[BatchStatus.FAILED] == Counted(1, 5)

    changes = StatusCountChange.objects.count()
    PayoutBatch.objects.filter(pk=failed.pk).update(review_reason="still a test")  # moves nothing counted
    assert StatusCountChange.objects.count() == changes

    assert fold_status_counts() == changes
    assert not StatusCountChange.objects.exists()
    for model in (PayoutBatch, BatchConversion, HostPayment):
        assert kept(model) == counted_by_hand(model)

    PayoutBatch.objects.filter(status=BatchStatus.CANCELLED).delete()  # a DELETE, after the fold
    assert kept(PayoutBatch) == counted_by_hand(PayoutBatch) == {BatchStatus.FAILED: Counted(1, 5)}
    assert fold_status_counts() == 1
    assert kept(PayoutBatch) == counted_by_hand(PayoutBatch)


@pytest.mark.django_db(transaction=True)
def test_a_truncate_empties_the_counts() -> None:
    PayoutBatchFactory.create(status=BatchStatus.CREATED)
    assert kept(PayoutBatch) == {BatchStatus.CREATED: Counted(1, 0)}
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE payout_batches CASCADE")
    assert kept(PayoutBatch) == {}
