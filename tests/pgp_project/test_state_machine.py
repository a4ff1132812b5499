"""One transition table per machine, applied by one compare-and-set that writes its audit event;
operator actions leave events too. No worker: these are the kernel's and the admin's own rules."""

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from batching.conversion import CONVERSION_FLOW
from batching.models import CONVERSION_MACHINE, BatchConversion
from payouts.exchange_batches.states import BATCH_TRANSITIONS, BatchStatus
from payouts.models import HOST_PAYMENT_MACHINE, HostPaymentStatus
from pgp_project.operations.models import AuditEvent
from pgp_project.operations.state_machine import IllegalTransition, transition

from ..conftest import run_at_the_same_moment
from ..factories import BatchConversionFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def events_of(conversion: BatchConversion) -> list[tuple[str, str, str, str]]:
    return list(
        AuditEvent.objects.filter(subject_type="conversion", subject_id=conversion.pk).values_list(
            "action", "from_status", "to_status", "reason"
        )
    )


def test_every_status_is_in_the_table_and_only_two_are_final() -> None:
    assert set(BATCH_TRANSITIONS) == set(BatchStatus.values)
    assert CONVERSION_MACHINE.terminal == {BatchStatus.COMPLETED, BatchStatus.CANCELLED}
    assert HOST_PAYMENT_MACHINE.terminal == {HostPaymentStatus.CONFIRMED}


def test_a_move_outside_the_table_is_refused_and_changes_nothing() -> None:
    conversion = BatchConversionFactory.create()
    with pytest.raises(IllegalTransition):
        transition(CONVERSION_MACHINE, conversion.pk, from_status=BatchStatus.CREATED, to_status=BatchStatus.COMPLETED)
    conversion.refresh_from_db()
    assert conversion.status == BatchStatus.CREATED
    assert events_of(conversion) == []


def test_a_transition_writes_one_event_and_a_lost_compare_and_set_writes_none() -> None:
    conversion = BatchConversionFactory.create()
    moved = transition(
        CONVERSION_MACHINE,
        conversion.pk,
        from_status=BatchStatus.CREATED,
        to_status=BatchStatus.FAILED,
        reason="exchange refused",
        updates={"review_reason": "exchange refused"},
    )
    stale = transition(
        CONVERSION_MACHINE, conversion.pk, from_status=BatchStatus.CREATED, to_status=BatchStatus.CANCELLED
    )
    assert (moved, stale) == (True, False)
    assert events_of(conversion) == [("transition", "created", "failed", "exchange refused")]


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_move_once_and_record_once() -> None:
    conversion = BatchConversionFactory.create()

    def cancel() -> bool:
        return transition(
            CONVERSION_MACHINE,
            conversion.pk,
            from_status=[BatchStatus.CREATED, BatchStatus.SWAP_CREATED],
            to_status=BatchStatus.CANCELLED,
            reason="race",
        )

    assert sorted(run_at_the_same_moment(cancel, times=4)) == [False, False, False, True]
    assert events_of(conversion) == [("transition", "created", "cancelled", "race")]


def test_operator_actions_are_in_the_history_with_who_did_them() -> None:
    operator = StaffUserFactory.create(username="night-shift")
    http = HttpClient()
    http.force_login(operator)
    conversion = BatchConversionFactory.create()
    changelist = reverse("admin:batching_batchconversion_changelist")
    http.post(changelist, {"action": "redrive", "_selected_action": [conversion.pk]})
    http.post(changelist, {"action": "cancel_unfunded", "_selected_action": [conversion.pk]})
    history = AuditEvent.objects.filter(subject_type=CONVERSION_FLOW.kind, subject_id=conversion.pk)
    assert list(history.values_list("action", "from_status", "to_status", "actor__username")) == [
        ("redrive", "created", "created", "night-shift"),
        ("cancel", "created", "cancelled", "night-shift"),
    ]
    page = http.get(reverse("admin:batching_batchconversion_change", args=[conversion.pk])).content.decode()
    assert "night-shift" in page
    assert "cancelled by night-shift in the admin" in page
