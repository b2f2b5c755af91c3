"""``armpilot evaluate``: a policy checkpoint over seeded episodes, for each candidate count N, same seeds.

Each N is one ``armpilot demo`` run of the full multi-process graph (sim ->
perception -> policy -> safety/verifier -> sim over DDS); the combined JSON
report has the success rate, command latency and policy inference latency per
N, and each run's own report and contact sheet sit next to it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from armpilot.ros_nodes.demo_runner import DemoOptions, run_demo


def evaluate(base: DemoOptions, candidate_counts: list[int], report: Path) -> dict[str, Any]:
    """Runs ``base`` once per N in ``candidate_counts``; writes and returns the combined report."""
    runs = {}
    for n in candidate_counts:
        run_report = report.parent / f"{report.stem}_n{n}.json"
        options = replace(base, report=run_report, extra_arguments={**base.extra_arguments, "candidates": str(n)})
        result = run_demo(options)
        runs[f"n{n}"] = {
            "candidates": n, "success_rate": result["success_rate"], "successes": result["successes"],
            "episodes": result["episodes"], "command_latency_ms": result["command_latency_ms"],
            "policy_node": result.get("policy_node", {}), "safety": result.get("safety", {}),
            "real_time_factor": result["real_time_factor"], "report": str(run_report),
            "contact_sheet": result["media"]["contact_sheet"], "by_distractors": result["by_distractors"],
            "failed_goal_distance_m_p50": result["failed_goal_distance_m_p50"],
        }
    combined = {"task": base.task, "policy": base.policy, "checkpoint": base.extra_arguments.get("checkpoint"),
                "seeds": [base.seed, base.seed + base.episodes - 1], "runs": runs}
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(combined, indent=2))
    print("\n".join(f"  N={r['candidates']:<3} success {r['success_rate'] * 100:5.1f} % "
                    f"({r['successes']}/{r['episodes']}), command latency p50 {r['command_latency_ms']['p50']:.1f} ms, "
                    f"inference p50 {r['policy_node'].get('inference_ms_p50', '?')} ms"
                    + (f", by distractors {r['by_distractors']}" if r["by_distractors"] else "")
                    for r in runs.values()))
    print(f"report: {report}")
    return combined
