"""The recovery sweep (Beat, every minute): each registered flow re-drives what a lost message
or a dead worker left behind, and moves anything past its deadline on, with an alert line
operators can grep (see the flows' own sweeps for the lines they write)."""

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from .flows import registered_flows

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    redriven: dict[str, list[int]] = field(default_factory=dict)
    expired: dict[str, list[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.redriven.values()) or any(self.expired.values())


def run_recovery_sweep() -> SweepReport:
    now = timezone.now()
    report = SweepReport()
    for flow in registered_flows():
        try:
            result = flow.sweep(now)
        except Exception:  # one broken flow must not stop the sweep of the others
            logger.exception("ALERT recovery_failed flow=%s", flow.name)
            continue
        report.redriven[flow.name] = result.redriven
        report.expired[flow.name] = result.expired
    if report:
        logger.warning("recovery sweep: %s", report)
    return report
