"""The cloud as offsets from the goal (``points_frame`` "goal"): config, what the PointNet sees, its statistics."""

from __future__ import annotations

import json

import pytest
import torch

from armpilot.features import GOAL, POINTS, POINTS_MASK, STATE
from armpilot.policies.diffusion_config import ACTION, DiffusionConfig
from armpilot.policies.diffusion_encoder import cloud_in_frame
from armpilot.policies.diffusion_model import DiffusionModel
from armpilot.policies.diffusion_training import points_stats
from armpilot.robot import CONTROLLED_JOINTS
from diffusion_data import TINY


def _stats(low: list[float], high: list[float]) -> dict[str, torch.Tensor]:
    lo, hi = torch.tensor(low), torch.tensor(high)
    return {"min": lo, "max": hi, "mean": (lo + hi) / 2, "std": (hi - lo) / 4}


def _model(frame: str) -> DiffusionModel:
    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, **{**TINY, "obs_keys": (STATE, GOAL)}, use_points=True,
                             points_frame=frame)
    stats = {STATE: _stats([-1.0] * 7, [1.0] * 7), GOAL: _stats([0.3, -0.3, 0.0], [0.7, 0.3, 0.1]),
             ACTION: _stats([-1.0] * 7, [1.0] * 7), POINTS: _stats([-0.2, -0.2, 0.0], [0.2, 0.2, 0.1])}
    return DiffusionModel(config, stats).eval()


def _obs(goal_xy: tuple[float, float], cloud_xy: tuple[float, float]) -> dict[str, torch.Tensor]:
    points = torch.zeros(1, 6, 3)
    points[0, :4, :2] = torch.tensor(cloud_xy)
    points[0, :4, 0] += torch.tensor([0.0, 0.01, 0.0, 0.01])  # a 1 cm square
    points[0, :4, 1] += torch.tensor([0.0, 0.0, 0.01, 0.01])
    goal = torch.tensor([[[0.0, 0.0, 0.02], [goal_xy[0], goal_xy[1], 0.02]]])  # the older frame is ignored
    return {STATE: torch.zeros(1, 2, 7), GOAL: goal, POINTS: points,
            POINTS_MASK: torch.tensor([[True] * 4 + [False] * 2])}


def _cloud_seen(model: DiffusionModel, obs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The normalised cloud the observation encoder receives."""
    seen = []

    def capture(points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seen.append(points[mask])
        return torch.zeros(len(points), model.encoder.points.out_dim)

    model.encoder.points.forward = capture
    model.encode(obs)
    return seen[0]


def test_a_goal_frame_cloud_is_the_same_wherever_object_and_goal_are_shifted_together():
    model = _model("goal")
    here = _cloud_seen(model, _obs((0.5, 0.1), (0.55, 0.12)))
    shifted = _cloud_seen(model, _obs((0.4, -0.2), (0.45, -0.18)))
    assert torch.allclose(here, shifted, atol=1e-6)
    # 5 cm past the goal in x, 2 cm in y: normalised with the ±0.2 m range the training clouds had
    assert torch.allclose(here[0, :2], torch.tensor([0.05 / 0.2, 0.02 / 0.2]), atol=1e-5)
    world = _model("world")
    assert not torch.allclose(_cloud_seen(world, _obs((0.5, 0.1), (0.55, 0.12))),
                              _cloud_seen(world, _obs((0.4, -0.2), (0.45, -0.18))))


def test_cloud_in_frame_subtracts_the_latest_goal_only_in_the_goal_frame():
    obs = _obs((0.5, 0.1), (0.55, 0.12))
    assert cloud_in_frame(obs[POINTS], obs[GOAL], "world") is obs[POINTS]
    moved = cloud_in_frame(obs[POINTS], obs[GOAL], "goal")
    assert torch.allclose(moved[0, 0], torch.tensor([0.05, 0.02, -0.02]), atol=1e-6)


def test_training_statistics_of_a_goal_frame_cloud_are_taken_in_that_frame():
    batch = {k: torch.cat([v, v]) for k, v in _obs((0.5, 0.1), (0.55, 0.12)).items()}
    batch[GOAL][1, -1, :2] = torch.tensor([0.6, 0.2])
    stats = points_stats(batch, "goal")
    assert torch.allclose(stats["min"][:2], torch.tensor([-0.05, -0.08]), atol=1e-6)
    assert torch.allclose(stats["max"][:2], torch.tensor([0.06, 0.03]), atol=1e-6)
    assert torch.allclose(points_stats(batch)["max"][:2], torch.tensor([0.56, 0.13]), atol=1e-6)


def test_the_points_frame_is_stored_checked_and_defaults_for_old_checkpoints():
    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, obs_keys=(STATE, GOAL), use_points=True,
                             points_frame="goal")
    assert DiffusionConfig.from_json(config.to_json()).points_frame == "goal"
    legacy = json.loads(config.to_json())
    del legacy["points_frame"]
    assert DiffusionConfig.from_json(json.dumps(legacy)).points_frame == "world"
    with pytest.raises(ValueError, match="unknown points frame 'tool'"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, points_frame="tool")
    with pytest.raises(ValueError, match="needs the goal"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, obs_keys=(STATE,), use_points=True, points_frame="goal")


def test_train_refuses_a_goal_frame_without_the_cloud(tmp_path, capsys):
    from armpilot.cli import main

    assert main(["train", str(tmp_path / "missing"), "--output", str(tmp_path / "out"), "--inputs", "state,goal",
                 "--points-frame", "goal"]) == 1
    assert "add points to --inputs" in capsys.readouterr().err
