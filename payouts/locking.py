"""Row locks on the objects money moves through, always taken in one order:

    the batch  ->  its host payment  ->  the chain adapter's own row for the sending address

Signing holds all three, cancelling holds the first two, so a cancel either sees a signed payment
(and refuses) or the payment is never signed. Callers never write their own select_for_update
for these rows; each helper must be called inside a transaction and returns the locked rows.

A lock waits at most PGP_LOCK_TIMEOUT_MS (PostgreSQL's lock_timeout, for the transaction): a
worker stuck behind another never holds its own locks for long, and the database error it gets
is transient, so its task retries.
"""

from typing import TypeVar

from django.conf import settings
from django.db import connection

from .exchange_batches.flow import exchange_funded_flow
from .models import ExchangeFundedBatch, HostPayment

B = TypeVar("B", bound=ExchangeFundedBatch)


def bounded_lock_wait() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = %s", [f"{int(settings.PGP_LOCK_TIMEOUT_MS)}ms"])


def lock_batch(model: type[B], batch_id: int) -> B:
    bounded_lock_wait()
    return model._default_manager.select_for_update().get(pk=batch_id)


def lock_batches(model: type[B], batch_ids: list[int]) -> list[B]:
    """Several batches of one kind, locked in id order (two runs never wait on each other in a circle)."""
    bounded_lock_wait()
    return list(model._default_manager.select_for_update().filter(pk__in=batch_ids).order_by("pk"))


def lock_batch_and_host_payment(model: type[B], batch_id: int) -> tuple[B, HostPayment | None]:
    batch = lock_batch(model, batch_id)
    host_payment = None
    if batch.host_payment_id is not None:
        host_payment = HostPayment.objects.select_for_update().get(pk=batch.host_payment_id)
    return batch, host_payment


def lock_host_payment_with_owner(host_payment_id: int) -> tuple[ExchangeFundedBatch, HostPayment]:
    """The batch a host payment funds, then the payment: the order every signer keeps."""
    bounded_lock_wait()
    owner_kind = HostPayment.objects.values_list("owner_kind", flat=True).get(pk=host_payment_id)
    model = exchange_funded_flow(owner_kind).model
    owner = model._default_manager.select_for_update().filter(host_payment_id=host_payment_id).first()
    if owner is None:  # its batch let it go (cancelled or re-quoted) while we waited for the lock
        raise HostPayment.DoesNotExist(f"host payment #{host_payment_id} no longer funds any batch")
    return owner, HostPayment.objects.select_for_update().get(pk=host_payment_id)


def lock_host_payment(host_payment_id: int) -> HostPayment:
    """The payment alone, for work that never goes on to lock its batch (replacing, settling)."""
    bounded_lock_wait()
    return HostPayment.objects.select_for_update().get(pk=host_payment_id)
