"""One call, from an app's `ready()`, wires a kind of exchange-funded batch in: host payments
find their owner through it, and the kernel's recovery sweep and task wrapper drive it."""

from functools import partial
from typing import Any

from pgp_project.operations.flows import RecoverableFlow, register_flow

from . import steps
from .flow import ExchangeFundedFlow, register_exchange_funded_flow
from .recovery import sweep_batches


def register(flow: ExchangeFundedFlow[Any]) -> None:
    register_exchange_funded_flow(flow)
    register_flow(
        RecoverableFlow(
            name=flow.kind,
            model=flow.model,
            advance=partial(steps.advance, flow),
            sweep=partial(sweep_batches, flow),
        )
    )
