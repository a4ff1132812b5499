"""What the payouts app registers at start-up: its flows (client payouts and host payments) with
the kernel, its periodic job, and the opener of instant payouts that intake calls."""

from django.conf import settings

from payments.instant_payouts import register_instant_payouts
from pgp_project.operations.alerts import register_alerts
from pgp_project.operations.attention import register_attention_source
from pgp_project.operations.beat_schedule import DefaultJob, register_default_job
from pgp_project.operations.flows import RecoverableFlow, register_flow

from .alerts import PAYOUTS_ALERTS
from .attention import attention_sources
from .client_payouts import CHECK_CLIENT_PAYOUTS_TASK, PAYOUT_FLOW
from .events import register_payout_events
from .exchange_batches.registration import register
from .host_payments.machine import advance_host_payment, host_payment_step_failed
from .host_payments.recovery import sweep_host_payments
from .instant_payouts import InstantPayoutHandler
from .models import HOST_PAYMENT_MACHINE, HostPayment

HOST_PAYMENT_FLOW_NAME = HOST_PAYMENT_MACHINE.subject


def register_payouts() -> None:
    register_alerts(*PAYOUTS_ALERTS)
    register(PAYOUT_FLOW)
    register_payout_events()
    register_flow(
        RecoverableFlow(
            name=HOST_PAYMENT_FLOW_NAME,
            model=HostPayment,
            advance=advance_host_payment,
            sweep=sweep_host_payments,
            on_failure=host_payment_step_failed,
        )
    )
    register_instant_payouts(InstantPayoutHandler())
    for source in attention_sources():
        register_attention_source(source)
    register_default_job(
        DefaultJob(
            name="Client payout check",
            task=CHECK_CLIENT_PAYOUTS_TASK,
            every_seconds=settings.PGP_CLIENT_PAYOUT_CHECK_SECONDS,
            description="Pays each client whose converted USDT passed the client's threshold.",
            money_job=True,  # off or late, clients are not paid
        )
    )
