"""``armpilot demo`` end to end: separate processes over DDS, a report, images, a video."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graph_harness import unique_domain_id

ARMPILOT = str(Path(sys.executable).parent / "armpilot")


def run_demo(tmp_path: Path, task: str, episodes: int, *extra: str) -> dict:
    report = tmp_path / "report.json"
    command = [ARMPILOT, "demo", "--task", task, "--episodes", str(episodes), "--report", str(report),
               "--domain-id", str(unique_domain_id()), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "success rate" in result.stdout
    return json.loads(report.read_text())


@pytest.mark.timeout(300)
def test_demo_short_pick(tmp_path):
    report = run_demo(tmp_path, "pick", 2, "--width", "320", "--height", "240")
    assert report["episodes"] == 2 and 0.0 <= report["success_rate"] <= 1.0
    assert report["success_rate"] >= 0.5
    assert set(report["command_latency_ms"]) >= {"p50", "p90", "p99", "count"}
    assert report["command_latency_ms"]["count"] > 0
    assert report["topic_rates_hz"]["/joint_states"] > 100
    assert Path(report["media"]["contact_sheet"]).stat().st_size > 1000
    assert Path(report["media"]["video"]).stat().st_size > 1000


def test_demo_help_teaches():
    text = subprocess.run([ARMPILOT, "demo", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--task", "--episodes", "--report", "--min-success"):
        assert option in text


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("task, threshold", [("reach", 0.95), ("pick", 0.80)])
def test_demo_twenty_episodes(tmp_path, task, threshold):
    report = run_demo(tmp_path, task, 20)
    assert report["success_rate"] >= threshold, report["per_episode"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_verifier_with_16_candidates_beats_one_on_the_same_seeds(tmp_path):
    """A perturbed proposer (noise + 40 % bad candidates): N=16 through the verifier vs N=1."""
    perturbed = ["--noise-std", "0.02", "--bad-probability", "0.4", "--bad-offset", "0.3", "--no-video"]
    one = run_demo(tmp_path / "n1", "pick", 20, "--candidates", "1", *perturbed)
    sixteen = run_demo(tmp_path / "n16", "pick", 20, "--candidates", "16", *perturbed)
    assert sixteen["success_rate"] >= one["success_rate"] + 0.20, (one["success_rate"], sixteen["success_rate"])
