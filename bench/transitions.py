"""Chunk transitions under injected inference delay: the closed loop for each mode x delay, same seeds.

Each cell is one ``armpilot demo`` run of the full graph (sim -> perception ->
policy -> safety -> sim over DDS) with ``transition:=MODE delay_ms:=D``; rows:
success rate, p95 of the acceleration / velocity / position jump at chunk
switches (``armpilot/chunk_switches.py``), safety rejections by reason. The
baseline is ``replace`` at the same delay: ``success_vs_replace`` is the
difference in points. ``prefix`` uses the shipped ``diffusion_<task>_prefix``.

    python bench/transitions.py --episodes 20                     # the full table (~1 h on 2 cores)
    python bench/transitions.py --modes replace rtc --delays 0 300 --episodes 5 --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from armpilot.policies.realtime import TRANSITIONS
from armpilot.rejections import Reason
from armpilot.ros_nodes.demo_runner import DemoOptions, run_demo, transition_arguments

#: Safety counters that are not rejections.
NOT_REJECTIONS = {"accepted", "candidates_seen", "enabled", "estopped", "superseded", "verify_ms_max"}


def cell(task: str, mode: str, delay_ms: float, episodes: int, seed: int, out: Path) -> dict[str, Any]:
    """One demo run; its success rate, switch jumps and rejections."""
    options = DemoOptions(task=task, policy="diffusion", episodes=episodes, seed=seed, video=False,
                          report=out / f"{mode}_{delay_ms:g}ms.json",
                          extra_arguments=transition_arguments(mode, delay_ms))
    report = run_demo(options)
    switches = report["chunk_switches"]
    rejections = {k: int(v) for k, v in report["safety"].items()
                  if k not in NOT_REJECTIONS and k in {r.value for r in Reason}}
    return {"mode": mode, "delay_ms": delay_ms, "episodes": report["episodes"], "successes": report["successes"],
            "success_rate": report["success_rate"], "switches": switches["count"],
            "accel_jump_p95": switches["acceleration_rad_s2"]["p95"],
            "velocity_jump_p95": switches["velocity_rad_s"]["p95"],
            "position_jump_p95": switches["position_rad"]["p95"],
            "rejections": rejections, "report": str(options.report)}


def table(cells: list[dict[str, Any]]) -> str:
    """Mode x delay rows, with each cell's success difference to replace at the same delay."""
    base = {c["delay_ms"]: c["success_rate"] for c in cells if c["mode"] == "replace"}
    lines = [f"{'mode':<9} {'delay':>6} {'success':>12} {'vs replace':>10} {'acc jump p95':>13} "
             f"{'vel jump p95':>13} {'switches':>8}  rejections"]
    for c in cells:
        versus = (f"{(c['success_rate'] - base[c['delay_ms']]) * 100:+.0f} pt" if c["delay_ms"] in base else "")
        rejected = ", ".join(f"{k} {v}" for k, v in sorted(c["rejections"].items())) or "none"
        lines.append(f"{c['mode']:<9} {c['delay_ms']:>4g}ms {c['successes']:>3}/{c['episodes']:<3} "
                     f"{c['success_rate'] * 100:5.0f}% {versus:>10} {c['accel_jump_p95']:>9.1f} r/s2 "
                     f"{c['velocity_jump_p95']:>9.2f} r/s {c['switches']:>8}  {rejected}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="push", help="task (default: push)")
    parser.add_argument("--modes", nargs="+", choices=TRANSITIONS, default=list(TRANSITIONS),
                        help="transitions to compare (default: all)")
    parser.add_argument("--delays", nargs="+", type=float, default=[0, 100, 200, 300],
                        help="injected delays, ms (default: 0 100 200 300)")
    parser.add_argument("--episodes", type=int, default=20, help="seeded episodes per cell (default: 20)")
    parser.add_argument("--episodes-at-300", type=int, default=None,
                        help="episodes for the cells at >= 300 ms (default: --episodes)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--out", type=Path, default=Path("out/transitions"), help="folder for each run's report")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    cells = []
    for delay in args.delays:
        for mode in args.modes:
            episodes = args.episodes_at_300 if (args.episodes_at_300 and delay >= 300) else args.episodes
            cells.append(cell(args.task, mode, delay, episodes, args.seed, args.out))
            (args.out / "table.json").write_text(json.dumps(cells, indent=2))  # partial results survive a stop
    print(json.dumps({"task": args.task, "cells": cells}) if args.json else table(cells))


if __name__ == "__main__":
    main()
