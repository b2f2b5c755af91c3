"""Benchmark the safety core: one chunk check and candidate selection, each next to its baseline.

Timed in one process with ``time.perf_counter`` per call (ms), after a warm-up:

* ``check_ws``: ``check_chunk`` of a 16 x 7 chunk with the ``WorkspaceChecker``
  (box, table, self-collision on) -- the safety node's per-chunk cost (target:
  p99 <= 1 ms); ``check_plain``: the same chunk without kinematics (baseline);
  ``workspace_only``: ``WorkspaceChecker.check`` alone.
* ``select_1``: ``select`` over one candidate (baseline); ``select_16``: over
  16 candidates; ``select_16_perturb3``: 16 proposals + 3 perturbed copies each
  (64 candidates); ``select_16_worst``: 16 candidates of which the 15 best
  scored fail the table check, so all 16 get the kinematic check.

p50 / p99 are over all runs; other processes on the machine inflate p99 first.

    python bench/safety.py            # table
    python bench/safety.py --json     # one JSON object of figures
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from figures import print_figures  # bench/ is on sys.path when run as a script
from armpilot.robot import CONTROLLED_JOINTS, HOME_POSITION, ArmModel, top_down_rotation
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.verifier import VerifierConfig, select
from armpilot.safety.workspace import WorkspaceChecker

H, N, DT = 16, 16, 0.1
NOW = 1000.0
CHECK_TARGET_P99_MS = 1.0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=3000, help="timed runs of each chunk check (>= 2000)")
    parser.add_argument("--select-runs", type=int, default=600, help="timed runs of each selection case")
    return parser.parse_args()


def timed_ms(fn: Callable[[], Any], runs: int, warmup: int = 20) -> np.ndarray:
    """(runs,) wall times of ``fn()`` in ms."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for k in range(runs):
        start = time.perf_counter()
        fn()
        out[k] = time.perf_counter() - start
    return out * 1e3


def _stats(name: str, samples: np.ndarray) -> dict[str, float]:
    return {f"{name}_p50_ms": float(np.percentile(samples, 50)), f"{name}_p99_ms": float(np.percentile(samples, 99))}


def make_chunk(start: np.ndarray, size: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(H,) times and (H, 7) positions: a slow, smooth move from ``start`` that every check accepts."""
    times = DT * np.arange(1, H + 1)
    direction = np.array([0.3, 0.2, -0.2, 0.3, -0.2, 0.4, 0.0])
    positions = start + np.sin(np.linspace(0.0, 1.0, H))[:, None] * size * direction
    return times, positions


def bench_check(arm: ArmModel, cfg: SafetyConfig, ws: WorkspaceChecker, runs: int) -> dict[str, Any]:
    times, positions = make_chunk(HOME_POSITION)

    def run(workspace: WorkspaceChecker | None) -> Callable[[], Any]:
        return lambda: check_chunk(cfg, arm.limits, CONTROLLED_JOINTS, NOW, times, positions, NOW, HOME_POSITION,
                                   workspace=workspace)

    assert run(ws)().accepted, "the benchmark chunk must pass every check"
    with_ws, plain = timed_ms(run(ws), runs), timed_ms(run(None), runs)
    only = timed_ms(lambda: ws.check(positions), runs)
    figures = {**_stats("check_ws", with_ws), **_stats("check_plain", plain), **_stats("workspace_only", only)}
    figures["check_ws_vs_plain_p50_ratio"] = figures["check_ws_p50_ms"] / figures["check_plain_p50_ms"]
    figures["check_ws_p99_meets_1ms"] = figures["check_ws_p99_ms"] <= CHECK_TARGET_P99_MS
    figures["check_runs"] = runs
    return figures


def bench_select(arm: ArmModel, cfg: SafetyConfig, ws: WorkspaceChecker, runs: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    times, base = make_chunk(HOME_POSITION)
    offsets = rng.normal(0.0, 0.01, (N, 1, 7))
    offsets[..., -1] = 0.0
    candidates = base[None] + offsets

    def run(cands: np.ndarray, config: VerifierConfig, measured: np.ndarray = HOME_POSITION) -> Callable[[], Any]:
        def call():
            selection = select(config, cfg, arm.limits, CONTROLLED_JOINTS, NOW, times, cands, NOW, measured,
                               gripper_joint="gripper_joint", executing=cands[0], workspace=ws, rng=rng)
            assert selection.verdict.accepted
            return selection
        return call

    plain, perturbed = VerifierConfig(), VerifierConfig(perturb_samples=3, perturb_std=0.01)
    figures: dict[str, Any] = {}
    figures.update(_stats("select_1", timed_ms(run(candidates[:1], plain), runs)))
    figures.update(_stats("select_16", timed_ms(run(candidates, plain), runs)))
    figures.update(_stats("select_16_perturb3", timed_ms(run(candidates, perturbed), runs)))
    # worst case: 15 consensus candidates dip the fingertips into the table, one outlier stays above it
    above = arm.ik(np.array([0.45, 0.0, 0.03]), top_down_rotation(0.0), HOME_POSITION).positions
    into = arm.ik(np.array([0.45, 0.0, 0.01]), top_down_rotation(0.0), HOME_POSITION).positions
    worst = np.repeat(make_chunk(above, size=0.02)[1][None], N, axis=0) + offsets * 0.1
    worst[1:] += into - above
    selection = run(worst, plain, measured=above)()
    assert selection.index == 0 and selection.rejected["table_clearance"] == N - 1
    figures.update(_stats("select_16_worst", timed_ms(run(worst, plain, measured=above), max(runs // 3, 50))))
    for name in ("select_16", "select_16_perturb3", "select_16_worst"):
        figures[f"{name}_vs_1_p50_ratio"] = figures[f"{name}_p50_ms"] / figures["select_1_p50_ms"]
    figures["select_runs"] = runs
    return figures


def main() -> None:
    args = _parse()
    arm = ArmModel()
    cfg = SafetyConfig()
    ws = WorkspaceChecker(arm, table_clearance=cfg.table_clearance, self_collision=True)
    start = time.perf_counter()
    figures = {**bench_check(arm, cfg, ws, args.runs), **bench_select(arm, cfg, ws, args.select_runs)}
    figures["collision_pairs"] = len(ws.geometry.collisionPairs)
    figures["bench_seconds"] = time.perf_counter() - start
    print_figures(figures, args.json)


if __name__ == "__main__":
    main()
