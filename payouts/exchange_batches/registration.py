"""One call, from an app's `ready()`, wires a kind of exchange-funded batch in: host payments
find their owner through it, and the kernel's recovery sweep and task wrapper drive it."""

from functools import partial
from typing import Any

from pgp_project.operations.attention import register_attention_source
from pgp_project.operations.flows import RecoverableFlow, register_flow

from . import steps
from .attention import batch_attention_sources
from .flow import ExchangeFundedFlow, register_exchange_funded_flow
from .recovery import sweep_batches
from .states import BatchStatus
from .transitions import to_review


def register(flow: ExchangeFundedFlow[Any]) -> None:
    register_exchange_funded_flow(flow)
    register_flow(
        RecoverableFlow(
            name=flow.kind,
            model=flow.model,
            advance=partial(steps.advance, flow),
            sweep=partial(sweep_batches, flow),
            on_failure=partial(step_failed, flow),
        )
    )
    # Its batches in review, and open ones that stopped moving, in the operators' queue.
    for source in batch_attention_sources(flow):
        register_attention_source(source)


def step_failed(flow: ExchangeFundedFlow[Any], batch_id: int, reason: str) -> None:
    """A step failed for good (or outlasted its retries): the batch goes to review, alerted."""
    batch = flow.model._default_manager.filter(pk=batch_id).first()
    if batch is not None:
        to_review(flow, batch, BatchStatus.FAILED, f"a step failed: {reason}")
