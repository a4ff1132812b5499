"""What differs between the kinds of exchange-funded batch, as a class each kind subclasses, and
the registry of those kinds.

The chain itself (create the exchange, fund it with one host payment, follow it to the end) is
the same for every kind and lives in `steps.py`; a subclass says only what is its own: the pair,
the amount and asset sent, where the exchange pays out, what finishing means and how unfunded
rows are released.
"""

from decimal import Decimal
from typing import Any, ClassVar

from django.db import models

from integrations.assets import Asset
from integrations.exchange.port import ExchangePair, ExchangeProvider, ExchangeState
from pgp_project.operations.state_machine import StateMachine

Batch = Any  # an ExchangeFundedBatch subclass instance (BatchConversion, PayoutBatch)


class ExchangeFundedFlow:
    machine: ClassVar[StateMachine]  # its subject names the kind: "conversion", "payout"
    advance_task: ClassVar[str]  # the Celery task that runs `steps.advance` for one batch
    # When cancelling may not simply release the batch's rows (an instant payout has no rows to
    # return to), the batch goes to review with this note instead.
    release_note: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        return self.machine.subject

    @property
    def model(self) -> type[models.Model]:
        return self.machine.model

    def pair(self, batch: Batch) -> ExchangePair:
        raise NotImplementedError

    def host_asset(self, batch: Batch) -> Asset:
        """The asset the host payment sends."""
        raise NotImplementedError

    def send_amount(self, batch: Batch) -> Decimal:
        """Exactly what the host payment sends: the batch's own total."""
        raise NotImplementedError

    def payout_address(self, batch: Batch) -> str:
        raise NotImplementedError

    def finish(self, batch_id: int, state: ExchangeState) -> None:
        """Record the finished exchange, in one transaction; nothing if already done."""
        raise NotImplementedError

    def release_rows(self, batch: Batch) -> int:
        """Put an unfunded batch's rows back where they came from; the number released."""
        raise NotImplementedError

    def before_exchange(self, batch: Batch, provider: ExchangeProvider) -> Batch:
        """A check before any exchange is created (the payout address, say); may send to review."""
        return batch

    def can_release(self, batch: Batch) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"


_FLOWS: dict[str, ExchangeFundedFlow] = {}


def register_exchange_funded_flow(flow: ExchangeFundedFlow) -> None:
    existing = _FLOWS.get(flow.kind)
    if existing is not None and existing is not flow:
        raise RuntimeError(f"a different exchange-funded flow is already registered as {flow.kind!r}")
    _FLOWS[flow.kind] = flow


def exchange_funded_flow(kind: str) -> ExchangeFundedFlow:
    try:
        return _FLOWS[kind]
    except KeyError:
        raise LookupError(f"no exchange-funded flow {kind!r}; is its app installed?") from None


def exchange_funded_flows() -> list[ExchangeFundedFlow]:
    return list(_FLOWS.values())
