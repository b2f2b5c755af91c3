"""Evaluation bookkeeping for closed-loop runs (pure): rates, latencies, reports, images."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import cv2
import numpy as np


@dataclass(frozen=True)
class EpisodeResult:
    """One episode: seed, success, sim seconds to success (or to the time limit), wall seconds, the task
    object's last distance to the goal in the table plane (m; None where the sim publishes no ground truth)
    and the scene's draw (``armpilot.sim.scenes.variation_summary``; empty when unknown)."""

    index: int
    seed: int
    success: bool
    sim_duration_s: float
    wall_duration_s: float
    final_goal_distance_m: float | None = None
    scene: dict = field(default_factory=dict)


@dataclass
class RateMeter:
    """Counts messages and the wall time between the first and the last."""

    count: int = 0
    first: float | None = None
    last: float | None = None

    def tick(self, wall_time: float) -> None:
        self.count += 1
        self.first = wall_time if self.first is None else self.first
        self.last = wall_time

    def rate_hz(self) -> float:
        """Mean rate, Hz (0 with fewer than two messages)."""
        if self.count < 2 or self.first is None or self.last is None or self.last <= self.first:
            return 0.0
        return (self.count - 1) / (self.last - self.first)


@dataclass
class LatencyLog:
    """Latency samples in seconds."""

    samples: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def summary_ms(self) -> dict[str, float]:
        """count, mean, p50, p90, p99 and max in milliseconds (NaN when empty)."""
        if not self.samples:
            return {"count": 0, "mean": float("nan"), "p50": float("nan"), "p90": float("nan"),
                    "p99": float("nan"), "max": float("nan")}
        ms = np.asarray(self.samples) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return {"count": int(len(ms)), "mean": float(ms.mean()), "p50": float(p50), "p90": float(p90),
                "p99": float(p99), "max": float(ms.max())}


def episode_summary(results: Sequence[EpisodeResult]) -> dict[str, object]:
    """Success rate and episode-time statistics."""
    n = len(results)
    successes = sum(r.success for r in results)
    times = [r.sim_duration_s for r in results if r.success]
    missed = [r.final_goal_distance_m for r in results if not r.success and r.final_goal_distance_m is not None]
    return {
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "episode_time_s": {
            "mean_success": float(np.mean(times)) if times else float("nan"),
            "p50_success": float(np.median(times)) if times else float("nan"),
            "max_success": float(np.max(times)) if times else float("nan"),
        },
        "failed_goal_distance_m_p50": float(np.median(missed)) if missed else None,
        "by_distractors": success_by_distractors(results),
        "per_episode": [asdict(r) for r in results],
    }


def success_by_distractors(results: Sequence[EpisodeResult]) -> dict[str, str]:
    """``{"0": "successes/episodes", ...}`` by the scene's distractor count (empty when no draw is known)."""
    counts: dict[int, list[int]] = {}
    for result in results:
        if "distractors" in result.scene:
            tally = counts.setdefault(int(result.scene["distractors"]), [0, 0])
            tally[0] += int(result.success)
            tally[1] += 1
    return {str(n): f"{won}/{total}" for n, (won, total) in sorted(counts.items())}


def contact_sheet(frames: Sequence[tuple[str, np.ndarray]], columns: int = 4, width: int = 320) -> np.ndarray:
    """Tile labelled RGB frames (H, W, 3) into one RGB image, each scaled to ``width`` px."""
    if not frames:
        raise ValueError("no frames to tile")
    tiles = []
    for label, frame in frames:
        height = int(round(frame.shape[0] * width / frame.shape[1]))
        tile = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, 0), (width, 22), (0, 0, 0), thickness=-1)
        cv2.putText(tile, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    blank = np.zeros_like(tiles[0])
    while len(tiles) % columns:
        tiles.append(blank)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def _switch_lines(switches: dict | None) -> list[str]:
    if not switches:
        return []
    p, v, a = switches["position_rad"], switches["velocity_rad_s"], switches["acceleration_rad_s2"]
    return [f"  chunk switches        {switches['count']}: jump p95 {p['p95']:.3f} rad, {v['p95']:.2f} rad/s, "
            f"{a['p95']:.1f} rad/s^2 (max {p['max']:.3f} / {v['max']:.2f} / {a['max']:.1f})"]


def format_summary(report: dict) -> str:
    """Human-readable table of a demo report."""
    lat = report["command_latency_ms"]
    lines = [
        f"task {report['task']} | policy {report['policy']} | episodes {report['episodes']}",
        f"  success rate          {report['success_rate'] * 100:6.1f} %  ({report['successes']}/{report['episodes']})",
        f"  episode time (succ.)  mean {report['episode_time_s']['mean_success']:.2f} s, "
        f"p50 {report['episode_time_s']['p50_success']:.2f} s (sim time)",
        f"  command latency       p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms "
        f"(n={lat['count']}; joint state received -> command at controller)",
        f"  real-time factor      {report['real_time_factor']:.2f}",
        *(["  success by distractors "
           + ", ".join(f"{n}: {tally}" for n, tally in report["by_distractors"].items())]
          if report.get("by_distractors") else []),
        *([f"  failed episodes end   p50 {report['failed_goal_distance_m_p50'] * 100:.1f} cm from the goal"]
          if report.get("failed_goal_distance_m_p50") is not None else []),
        *_switch_lines(report.get("chunk_switches")),
        "  topic rates (Hz):",
    ]
    for topic, rate in report["topic_rates_hz"].items():
        lines.append(f"    {topic:<52} {rate:7.1f}")
    safety = report.get("safety", {})
    if safety:
        lines.append("  safety: " + ", ".join(f"{k}={v}" for k, v in sorted(safety.items())))
    policy = report.get("policy_node", {})
    if policy:
        lines.append(f"  policy inference      p50 {policy.get('inference_ms_p50')} ms, "
                     f"p95 {policy.get('inference_ms_p95')} ms "
                     f"(chunks published {policy.get('published')}, dropped stale {policy.get('dropped_stale')}, "
                     f"busy skips {policy.get('skipped_busy')})")
    return "\n".join(lines)
