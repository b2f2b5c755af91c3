"""``armpilot demo`` end to end: separate processes over DDS, a report, images, a video."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
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


@pytest.mark.graph
@pytest.mark.timeout(300)
def test_demo_short_pick(tmp_path):
    report = run_demo(tmp_path, "pick", 2, "--width", "320", "--height", "240")
    assert report["episodes"] == 2 and 0.0 <= report["success_rate"] <= 1.0
    assert report["success_rate"] >= 0.5
    for episode in report["per_episode"]:  # the scene's draw; pick's goal follows the box: no distance to it
        assert episode["scene"]["distractors"] == 0 and episode["scene"]["object_scale"] == 1.0
        assert episode["final_goal_distance_m"] is None
    assert report["by_distractors"] == {"0": f"{report['successes']}/2"}
    assert set(report["command_latency_ms"]) >= {"p50", "p90", "p99", "count"}
    assert report["command_latency_ms"]["count"] > 0
    # joint states per second of sim time (sim.yaml: 125 Hz); the sim catches up in batches when the machine is
    # loaded (72 Hz measured with two busy loops beside the suite), so this only asks for a running stream
    assert report["topic_rates_hz"]["/joint_states"] / report["real_time_factor"] > 0.3 * 125
    assert Path(report["media"]["contact_sheet"]).stat().st_size > 1000
    assert Path(report["media"]["video"]).stat().st_size > 1000


@pytest.mark.graph
@pytest.mark.timeout(300)
def test_a_push_demo_reports_where_the_box_ended_and_what_the_scene_drew(tmp_path):
    report = run_demo(tmp_path, "push", 2, "--scene", "randomized", "--object-source", "privileged",
                      "--width", "160", "--height", "120", "--no-video")
    for episode in report["per_episode"]:
        distance = episode["final_goal_distance_m"]
        # push succeeds within 3 cm; the box may slide on a little after the success message
        assert distance is not None and (distance < 0.05 if episode["success"] else distance > 0.025), episode
        assert 0 <= episode["scene"]["distractors"] <= 2 and 0.7 < episode["scene"]["object_scale"] < 1.3
    assert sum(int(tally.split("/")[1]) for tally in report["by_distractors"].values()) == 2


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


@pytest.mark.graph
@pytest.mark.timeout(400)
def test_demo_with_the_shipped_diffusion_policy(tmp_path):
    """The README's main job with fewer episodes: the shipped checkpoint through perception and the verifier."""
    report = run_demo(tmp_path, "reach", 3, "--policy", "diffusion", "--candidates", "4", "--width", "320",
                      "--height", "240", "--no-video")
    # 3 episodes on a loaded 2-core machine: at least one success shows the path works end to end; the
    # success *rate* is the main job's figure (20 episodes: 19/20 here), not a 3-episode test's
    assert report["policy"] == "diffusion" and report["success_rate"] >= 1 / 3, report["per_episode"]
    assert int(report["safety"]["accepted"]) > 0 and report["safety"]["joint_states_heard"] == "True"
    assert float(report["policy_node"]["inference_ms_p50"]) > 0 and int(report["policy_node"]["published"]) > 0


@pytest.mark.graph
@pytest.mark.timeout(400)
def test_demo_through_a_policy_server(tmp_path):
    """policy:=remote: armpilot serve hosts the shipped diffusion policy in another process."""
    port = 8700 + unique_domain_id() % 200
    server = subprocess.Popen([ARMPILOT, "serve", "--backend", "diffusion", "--task", "reach", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [server.stdout.readline() for _ in range(1)]
        while "serving 'diffusion'" not in lines[-1] and lines[-1] and len(lines) < 100:
            lines.append(server.stdout.readline())
        assert "serving 'diffusion'" in lines[-1], "".join(lines)
        # read on: a full pipe would block the server's logging, and with it its answers
        threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True).start()
        report = run_demo(tmp_path, "reach", 2, "--policy", "remote", "--server-uri", f"ws://127.0.0.1:{port}",
                          "--width", "320", "--height", "240", "--no-video")
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert report["success_rate"] >= 0.5, (report["per_episode"], "".join(lines)[-3000:])


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("task, threshold", [("reach", 0.90), ("push", 0.70)])
def test_shipped_diffusion_policy_fifty_episodes(tmp_path, task, threshold):
    """Issue 6's bar: 50 seeded episodes through perception -> policy -> verifier/safety, separate processes."""
    report = run_demo(tmp_path, task, 50, "--policy", "diffusion", "--no-video")
    assert report["success_rate"] >= threshold, report["per_episode"]
