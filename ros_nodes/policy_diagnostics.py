"""The policy node's 1 Hz ``/diagnostics`` status: inference latency percentiles and proposal counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header


def policy_diagnostics(backend: str, transition: str, inference_ms: Iterable[float], ready_latency_s: float,
                       counts: Mapping[str, int], stamp: Time) -> DiagnosticArray:
    """One "armpilot: policy" status: inference p50/p95/max (wall clock, ms) and ``counts``; WARN when chunks
    were dropped stale or observations skipped for NaN."""
    latency = np.asarray(list(inference_ms) or [0.0])
    values = {"backend": backend, "inference_ms_p50": f"{np.percentile(latency, 50):.2f}",
              "inference_ms_p95": f"{np.percentile(latency, 95):.2f}", "inference_ms_max": f"{latency.max():.2f}",
              "transition": transition, "ready_latency_ms_estimate": f"{ready_latency_s * 1e3:.1f}", **counts}
    trouble = counts["dropped_stale"] or counts["skipped_nan"]
    status = DiagnosticStatus(level=DiagnosticStatus.WARN if trouble else DiagnosticStatus.OK,
                              name="armpilot: policy", hardware_id="armpilot",
                              message=f"{counts['published']} chunks published",
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=Header(stamp=stamp), status=[status])
