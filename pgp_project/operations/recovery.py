"""The recovery sweep (Beat, every minute): each registered flow re-drives what a lost message
or a dead worker left behind, and moves anything past its deadline on, with an alert line
operators can grep (see the flows' own sweeps for the lines they write)."""

import logging
from dataclasses import dataclass, field

from django.utils import timezone

from .alerts import RECOVERY_FAILED, Subject, alert, prune_alert_throttles
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
        except Exception:  # noqa: BLE001 - one broken flow must not stop the others; alerted with its traceback
            alert(RECOVERY_FAILED, Subject("flow", flow.name), exc_info=True, flow=flow.name)
            continue
        report.redriven[flow.name] = result.redriven
        report.expired[flow.name] = result.expired
    if report:
        logger.warning("recovery sweep: %s", report)
    # Throttle rows older than the interval hold nothing back: drop them so the table stays small.
    prune_alert_throttles()
    return report
