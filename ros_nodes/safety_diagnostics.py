"""The safety node's /diagnostics message (counts by reason, latches, last rejection)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.topic_endpoint_info import TopicEndpointInfo

from armpilot.rejections import RejectionLog
from armpilot.safety.supervisor import SupervisorState

STATUS_NAME = "armpilot: safety"


def diagnostics_message(state: SupervisorState, accepted: int, candidates: int, rejections: RejectionLog,
                        clock_problem: str = "", extra: dict[str, object] | None = None) -> DiagnosticArray:
    """ERROR while the e-stop is latched or a second proposer publishes; WARN when disabled, after a clock
    jump or after rejections within the log's recent window; else OK. Counts cover the whole run."""
    recent = rejections.recent()
    if state.estopped:
        level, message = DiagnosticStatus.ERROR, f"e-stop latched: {state.estop_cause}"
    elif state.proposer_fault:
        level, message = DiagnosticStatus.ERROR, f"refusing every proposal: {state.proposer_fault}"
    elif not state.enabled:
        level, message = DiagnosticStatus.WARN, "disabled"
    elif clock_problem:
        level, message = DiagnosticStatus.WARN, clock_problem
    elif recent:
        level, message = DiagnosticStatus.WARN, (f"{sum(recent.values())} rejection(s) in the last "
                                                 f"{rejections.window_s:.0f} s; last: {rejections.last}")
    else:
        level, message = DiagnosticStatus.OK, f"no rejection in the last {rejections.window_s:.0f} s"
    values = {"accepted": accepted, "candidates_seen": candidates, "estopped": state.estopped,
              "enabled": state.enabled, **rejections.counts, **(extra or {})}
    status = DiagnosticStatus(level=level, name=STATUS_NAME, hardware_id="armpilot", message=message,
                              values=[KeyValue(key=k, value=str(v)) for k, v in sorted(values.items())])
    return DiagnosticArray(status=[status])


def publisher_identity(info: TopicEndpointInfo) -> str:
    """Node name and DDS participant of a publisher: a node that takes another's name is still told apart."""
    participant = bytes(info.endpoint_gid[:12]).hex()
    return f"{info.node_namespace.rstrip('/')}/{info.node_name} (participant {participant[-8:]})"
