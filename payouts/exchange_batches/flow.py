"""What differs between the kinds of exchange-funded batch, as a class each kind subclasses, and
the registry of those kinds.

The chain itself (create the exchange, fund it with one host payment, follow it to the end) is
the same for every kind and lives in `steps.py`; a subclass says only what is its own: the pair,
the amount and asset sent, where the exchange pays out, what finishing means and how unfunded
rows are released.
"""

from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar, cast

from integrations.assets import Asset
from integrations.exchange.port import ExchangePair, ExchangeState
from pgp_project.operations.state_machine import StateMachine
from pgp_project.operations.transient import TransientError

from ..models import ExchangeFundedBatch

B = TypeVar("B", bound=ExchangeFundedBatch)  # the concrete batch model of a flow


class PayoutNotSeenYet(TransientError):
    """The exchange says it paid out, but our chain node does not show that payout mined (yet):
    a lagging node, or a payout that never happened. The batch keeps polling; its deadline bounds
    how long."""


class ExchangeFundedFlow(Generic[B]):
    machine: ClassVar[StateMachine]  # its subject names the kind: "conversion", "payout"
    advance_task: ClassVar[str]  # the Celery task that runs `steps.advance` for one batch
    # When cancelling may not simply release the batch's rows (an instant payout has no rows to
    # return to), the batch goes to review with this note instead.
    release_note: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        return self.machine.subject

    @property
    def model(self) -> type[B]:
        return cast("type[B]", self.machine.model)

    def pair(self, batch: B) -> ExchangePair:
        raise NotImplementedError

    def host_asset(self, batch: B) -> Asset:
        """The asset the host payment sends."""
        raise NotImplementedError

    def send_amount(self, batch: B) -> Decimal:
        """Exactly what the host payment sends: the batch's own total."""
        raise NotImplementedError

    def payout_address(self, batch: B) -> str:
        raise NotImplementedError

    def payout_extra_id(self, batch: B) -> str:
        """The payout address's memo or destination tag, where it has one."""
        return ""

    def finish(self, batch_id: int, state: ExchangeState) -> None:
        """Record the finished exchange, in one transaction; nothing if already done."""
        raise NotImplementedError

    def payout_problem(self, batch: B, state: ExchangeState) -> str | None:
        """Before `finish`: why the finished exchange's payout cannot be trusted as reported
        (the chain shows another amount, say), or None when it can. Raises PayoutNotSeenYet
        while the chain cannot tell yet. A flow whose payout lands where we cannot read (a
        client's wallet on another chain) trusts the report."""
        return None

    def release_rows(self, batch: B) -> int:
        """Put an unfunded batch's rows back where they came from; the number released."""
        raise NotImplementedError

    def before_exchange(self, batch: B) -> B:
        """A check before any exchange is created (the payout address, say); may send to review."""
        return batch

    def can_release(self, batch: B) -> bool:
        return True

    def waits_below_minimum(self, batch: B) -> bool:
        """Whether a batch below the exchange's minimum waits to be merged with later ones
        (instead of giving its rows back to wait in the balance)."""
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"


_FLOWS: dict[str, ExchangeFundedFlow[Any]] = {}


def register_exchange_funded_flow(flow: ExchangeFundedFlow[Any]) -> None:
    existing = _FLOWS.get(flow.kind)
    if existing is not None and existing is not flow:
        raise RuntimeError(f"a different exchange-funded flow is already registered as {flow.kind!r}")
    _FLOWS[flow.kind] = flow


def exchange_funded_flow(kind: str) -> ExchangeFundedFlow[Any]:
    try:
        return _FLOWS[kind]
    except KeyError:
        raise LookupError(f"no exchange-funded flow {kind!r}; is its app installed?") from None


def exchange_funded_flows() -> list[ExchangeFundedFlow[Any]]:
    return list(_FLOWS.values())
