"""The safety node's /diagnostics message (counts by reason, latches, last rejection)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from armpilot.rejections import RejectionLog
from armpilot.safety.supervisor import SupervisorState

STATUS_NAME = "armpilot: safety"


def diagnostics_message(state: SupervisorState, accepted: int, candidates: int, rejections: RejectionLog) -> DiagnosticArray:
    """ERROR while the e-stop is latched, WARN when disabled or after rejections, else OK."""
    if state.estopped:
        level, message = DiagnosticStatus.ERROR, f"e-stop latched: {state.estop_cause}"
    elif not state.enabled:
        level, message = DiagnosticStatus.WARN, "disabled"
    elif rejections.total():
        level, message = DiagnosticStatus.WARN, f"last rejection: {rejections.last}"
    else:
        level, message = DiagnosticStatus.OK, "all proposals accepted"
    values = {"accepted": accepted, "candidates_seen": candidates, "estopped": state.estopped,
              "enabled": state.enabled, **rejections.counts}
    status = DiagnosticStatus(level=level, name=STATUS_NAME, hardware_id="armpilot", message=message,
                              values=[KeyValue(key=k, value=str(v)) for k, v in sorted(values.items())])
    return DiagnosticArray(status=[status])
