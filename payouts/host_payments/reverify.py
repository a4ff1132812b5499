"""An operator asks the chain again about a failed host payment: a lagging node can make a mined
transaction look failed. Found mined and successful, with enough confirmations, it is confirmed,
and its batch can be resumed; otherwise what the chain shows is recorded in its history."""

from django.db import transaction
from django.utils import timezone

from pgp_project.operations.alerts import Subject, alert
from pgp_project.operations.permissions import require_permission
from pgp_project.operations.state_machine import record_action, transition

from ..alerts import HOST_PAYMENT_MINED_AFTER_RELEASE
from ..exchange_batches.flow import exchange_funded_flow
from ..exchange_batches.states import BatchStatus
from ..locking import lock_host_payment
from ..models import HOST_PAYMENT_MACHINE, HostPayment, HostPaymentStatus
from ..permissions import OPERATE_BATCH
from .ports import chain_adapter


def reverify_on_chain(host_payment_id: int, *, actor: object) -> str:
    """What the chain shows, as said to the operator; confirms the payment if it was mined."""
    require_permission(actor, OPERATE_BATCH)
    host_payment = HostPayment.objects.get(pk=host_payment_id)
    if host_payment.status != HostPaymentStatus.FAILED:
        return f"host payment #{host_payment.pk} is {host_payment.status}: only a failed one is re-verified"
    adapter = chain_adapter(host_payment.chain)
    hashes = list(host_payment.candidates.values_list("tx_hash", flat=True)) or [host_payment.tx_hash or ""]
    mined = adapter.find_mined(hashes)
    confirmations = adapter.confirmations(mined.block_number) if mined is not None else 0
    with transaction.atomic():
        host_payment = lock_host_payment(host_payment_id)
        if mined is not None and mined.succeeded and confirmations >= adapter.confirmations_required:
            found = f"{mined.tx_hash} mined in block {mined.block_number} with {confirmations} confirmations"
            transition(
                HOST_PAYMENT_MACHINE,
                host_payment.pk,
                from_status=HostPaymentStatus.FAILED,
                to_status=HostPaymentStatus.CONFIRMED,
                actor=actor,
                action="reverify",
                reason=f"re-verified on chain: {found}",
                updates={
                    "tx_hash": mined.tx_hash,
                    "block_number": mined.block_number,
                    "confirmations": confirmations,
                    "network_fee": mined.network_fee,
                    "confirmed_at": timezone.now(),
                    "last_error": "",
                },
            )
            return _after_confirming(host_payment, found)
        if mined is None:
            shown = "none of its transactions is mined"
        elif not mined.succeeded:
            shown = f"{mined.tx_hash} reverted in block {mined.block_number}"
        else:
            shown = f"{mined.tx_hash} mined with only {confirmations} confirmation(s) so far"
        record_action(
            HOST_PAYMENT_MACHINE.subject,
            host_payment.pk,
            action="reverify",
            status=host_payment.status,
            actor=actor,
            reason=f"re-verified on chain: {shown}",
        )
    return f"host payment #{host_payment.pk} stays failed: {shown}"


def _after_confirming(host_payment: HostPayment, found: str) -> str:
    """Its batch can now follow the exchange, unless its rows were released meanwhile: then
    that value may be paid twice, and a person must reconcile it at once."""
    flow = exchange_funded_flow(host_payment.owner_kind)
    owner = flow.model._default_manager.filter(host_payment=host_payment).first()
    if owner is not None and owner.status == BatchStatus.CANCELLED:
        alert(
            HOST_PAYMENT_MINED_AFTER_RELEASE,
            Subject("host_payment", host_payment.pk),
            host_payment=host_payment.pk,
            kind=flow.kind,
            id=owner.pk,
            rows="released",
            found=found,
        )
        return (
            f"host payment #{host_payment.pk} confirmed ({found}), but {flow.kind} #{owner.pk} had released its rows: "
            "that value may be paid twice; reconcile by hand"
        )
    return f"host payment #{host_payment.pk} confirmed: {found}; resume its batch to follow the exchange"
