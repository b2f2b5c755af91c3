"""Diffusion policy core (no ROS): network, normaliser, samplers, checkpoints, training, backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from armpilot.policies.base import Observation
from armpilot.policies.diffusion import DiffusionPolicy, object_vector
from armpilot.policies.diffusion_checkpoint import CheckpointError, load_policy, save_policy
from armpilot.policies.diffusion_config import ACTION_OFFSET, SAMPLERS, STATE, STATE_STEP, DiffusionConfig
from armpilot.policies.diffusion_encoder import FeatureNormalizer
from armpilot.policies.diffusion_model import DiffusionModel
from armpilot.policies.diffusion_sampling import ChunkSampler
from armpilot.policies.diffusion_training import TrainOptions, sampled_action_error, train
from armpilot.policies.diffusion_unet import GEMM_MIN_BATCH, ConditionalUnet1D, TemporalConv
from armpilot.policies.perturbed import PerturbedProposer, ProposerConfig
from armpilot.robot import CONTROLLED_JOINTS
from diffusion_data import STEP, TINY, write_dataset


def _stats(dim: int, low: float = -1.0, high: float = 1.0) -> dict[str, torch.Tensor]:
    return {"min": torch.full((dim,), low), "max": torch.full((dim,), high), "mean": torch.zeros(dim),
            "std": torch.ones(dim)}


def _model(**overrides) -> DiffusionModel:
    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, **{**TINY, **overrides})
    stats = {"observation.state": _stats(7), "observation.object": _stats(7), "observation.goal": _stats(3),
             "action": _stats(7)}
    return DiffusionModel(config, stats).eval()


def _obs(batch: int = 1, value: float = 0.0) -> dict[str, torch.Tensor]:
    return {"observation.state": torch.full((batch, 2, 7), value), "observation.object": torch.zeros(batch, 2, 7),
            "observation.goal": torch.full((batch, 2, 3), value)}


def test_unet_shapes_and_film_conditioning():
    unet = ConditionalUnet1D(7, 32, (16, 32, 64), 5, 4, 16).eval()
    x, t = torch.randn(3, 16, 7), torch.tensor([0, 10, 99])
    out_a = unet(x, t, torch.zeros(3, 32))
    out_b = unet(x, t, torch.ones(3, 32))
    assert out_a.shape == (3, 16, 7)
    assert not torch.allclose(out_a, out_b)  # the condition reaches the output through FiLM
    assert not torch.allclose(unet(x, t + 1, torch.zeros(3, 32)), out_a)  # so does the step


@pytest.mark.parametrize("kernel, stride, padding", [(5, 1, 2), (3, 2, 1), (1, 1, 0)])
def test_temporal_conv_matrix_product_equals_the_convolution(kernel, stride, padding):
    conv = TemporalConv(12, 20, kernel, stride, padding)
    x = torch.randn(GEMM_MIN_BATCH + 12, 12, 16)
    with torch.no_grad():
        expected = torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride, padding)
        assert torch.allclose(conv(x), expected, atol=1e-5)  # the im2col path
        assert torch.equal(conv(x[:1]), super(TemporalConv, conv).forward(x[:1]))  # a single chunk: nn.Conv1d
    unet = ConditionalUnet1D(7, 32, (16, 32, 64), 5, 4, 16).eval()
    chunks, steps = torch.randn(16, 16, 7), torch.arange(16)
    cond = torch.randn(16, 32)
    with torch.no_grad():
        batched = unet(chunks, steps, cond)
        singles = torch.cat([unet(chunks[i:i + 1], steps[i:i + 1], cond[i:i + 1]) for i in range(16)])
    assert torch.allclose(batched, singles, atol=1e-4)  # the batch (im2col) and single (oneDNN) paths agree


def test_horizon_must_fit_the_levels():
    with pytest.raises(ValueError, match="multiple"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, horizon=10, down_dims=(8, 16, 32))


def test_normalizer_round_trip_and_constant_features():
    stats = {"x": {"min": torch.tensor([0.0, 0.04]), "max": torch.tensor([2.0, 0.04]),
                   "mean": torch.tensor([1.0, 0.04]), "std": torch.tensor([0.5, 0.0])}}
    for mode in ("min_max", "mean_std"):
        norm = FeatureNormalizer(stats, mode)
        x = torch.tensor([[0.0, 0.04], [2.0, 0.05]])
        y = norm.normalize("x", x)
        assert torch.allclose(norm.unnormalize("x", y), x, atol=1e-6)
        assert torch.allclose(y[:, 1], torch.tensor([0.0, 0.01]), atol=1e-6)  # centred, not blown up
    assert torch.allclose(FeatureNormalizer(stats, "min_max").normalize("x", torch.tensor([[0.0, 0.04]]))[0, 0],
                          torch.tensor(-1.0))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_draws_n_chunks_in_one_batch(sampler):
    model = _model()
    chunks = model.sample(_obs(), 4, ChunkSampler(model.config, sampler, 3), generator=torch.Generator().manual_seed(0))
    assert chunks.shape == (4, 8, 7) and torch.isfinite(chunks).all()
    assert not torch.allclose(chunks[0], chunks[1])  # N distinct samples, not copies


def test_streaming_warm_start_runs_fewer_steps():
    model = _model()
    calls = []
    sampler = ChunkSampler(model.config, "streaming", 10, start_fraction=0.25)
    unet_forward = model.unet.forward
    model.unet.forward = lambda *a: calls.append(1) or unet_forward(*a)
    model.sample(_obs(), 2, sampler)
    cold = len(calls)
    model.sample(_obs(), 2, sampler, warm=torch.zeros(8, 7))
    assert cold == 10 and len(calls) - cold == 3


def test_checkpoint_round_trip_gives_identical_samples(tmp_path):
    model = _model()
    save_policy(tmp_path, model, {k: v for k, v in [("observation.state", _stats(7)), ("observation.object", _stats(7)),
                                                     ("observation.goal", _stats(3)), ("action", _stats(7))]}, {})
    loaded, meta = load_policy(tmp_path)
    assert meta["config"] == model.config
    sampler = ChunkSampler(model.config, "ddim", 4)
    a = model.sample(_obs(), 2, sampler, generator=torch.Generator().manual_seed(3))
    b = loaded.sample(_obs(), 2, sampler, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


def test_bad_checkpoints_are_refused_with_the_reason(tmp_path):
    model = _model()
    stats = {"observation.state": _stats(7), "observation.object": _stats(7), "observation.goal": _stats(3),
             "action": _stats(7)}
    with pytest.raises(CheckpointError, match="no diffusion checkpoint"):
        load_policy(tmp_path / "missing")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(CheckpointError, match="no policy.json"):
        load_policy(tmp_path / "empty")
    save_policy(tmp_path / "ok", model, stats, {})
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "policy.json").write_text((tmp_path / "ok" / "policy.json").read_text())
    (corrupt / "policy.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_policy(corrupt)
    meta = json.loads((tmp_path / "ok" / "policy.json").read_text())
    meta["config"]["down_dims"] = [8, 16]
    (tmp_path / "ok" / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shapes"):
        load_policy(tmp_path / "ok")
    meta["config"]["bogus"] = 1
    (tmp_path / "ok" / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="bogus"):
        load_policy(tmp_path / "ok")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("diffusion")
    dataset = write_dataset(root / "dataset")
    options = TrainOptions(dataset, root / "policy", steps=400, batch_size=64, learning_rate=3e-3, warmup_steps=20,
                           ema_decay=0.9, save_every=200, seed=0, threads=1, config=TINY)
    return dataset, train(options)


def _observation(goal_x: float, joint0: float) -> Observation:
    q = np.array([joint0, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
    goal = np.array([goal_x, 0.1, 0.05])
    now = Observation(1.0, CONTROLLED_JOINTS, q, goal, 0.0, goal)
    return Observation(1.0, CONTROLLED_JOINTS, q, goal, 0.0, goal, (now,))


def test_training_reduces_the_loss_and_writes_a_checkpoint(trained):
    _, report = trained
    losses = report["losses"]
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:20])
    assert report["validation_loss"] is not None and report["steps"] == 400
    (first_save, early), (last_save, late) = report["action_errors"]
    assert (first_save, last_save) == (200, 400) and report["validation_action_error"] == late
    assert late["chunk"] < early["chunk"]  # sampled chunks come nearer the demonstrations as training goes on
    folder = Path(report["output"])
    assert {"policy.safetensors", "policy.json", "train_state.safetensors", "train_state.json"} <= {
        p.name for p in folder.iterdir()}


def test_trained_policy_moves_toward_the_goal(trained):
    _, report = trained
    policy = DiffusionPolicy(Path(report["output"]), CONTROLLED_JOINTS, horizon=5, chunk_dt=1 / 15,
                             sampler="ddim", steps=10)
    for goal_x in (-0.4, 0.4):
        chunk = policy.predict_action_chunk(_observation(goal_x, 0.0))
        # the demonstrations move joint 0 by STEP per frame toward the goal; a dataset-mean policy would not move
        assert np.sign(chunk[-1, 0]) == np.sign(goal_x)
        assert abs(chunk[-1, 0]) > 2 * STEP
        assert np.allclose(chunk[:, 1:6], [-0.3, 1.6, 0.0, 1.2, 0.0], atol=0.1)
        assert np.all(chunk[:, 6] == np.float32(0.04))  # the constant gripper stays in its demonstrated range
    candidates = policy.sample_candidates(_observation(0.4, 0.0), 16)
    assert candidates.shape == (16, 5, 7)


def test_training_resumes_where_it_stopped(trained, tmp_path):
    dataset, _ = trained
    options = TrainOptions(dataset, tmp_path / "p", steps=20, batch_size=16, save_every=10, seed=1, threads=1,
                           config=TINY)
    first = train(options)
    resumed = train(TrainOptions(dataset, tmp_path / "p", steps=30, batch_size=16, save_every=10, seed=1,
                                 threads=1, resume=True, config=TINY))
    assert resumed["resumed_from_step"] == 20 and len(resumed["losses"]) == 30
    assert resumed["losses"][:20] == first["losses"]


def test_same_seed_same_weights(trained, tmp_path):
    dataset, _ = trained
    reports = [train(TrainOptions(dataset, tmp_path / str(k), steps=5, batch_size=8, seed=7, threads=1, config=TINY))
               for k in range(2)]
    assert reports[0]["losses"] == reports[1]["losses"]


def test_policy_refuses_other_joints_and_takes_its_own_in_any_order(trained):
    _, report = trained
    with pytest.raises(CheckpointError, match="trained on joints"):
        DiffusionPolicy(Path(report["output"]), CONTROLLED_JOINTS[:-1])
    reordered = DiffusionPolicy(Path(report["output"]), CONTROLLED_JOINTS[::-1])  # the driver's order, say
    assert reordered.joint_order == tuple(CONTROLLED_JOINTS), "the node feeds it in the order it was trained on"


def test_policy_refuses_a_checkpoint_of_another_robot(trained, tmp_path):
    _, report = trained
    folder = tmp_path / "panda_policy"
    shutil.copytree(report["output"], folder)
    meta = json.loads((folder / "policy.json").read_text())
    meta["config"]["robot"] = "panda"
    (folder / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="trained on robot 'panda' but the node runs robot 'armpilot'"):
        DiffusionPolicy(folder, CONTROLLED_JOINTS, robot="armpilot")
    assert DiffusionPolicy(folder, CONTROLLED_JOINTS, robot="panda").config.robot == "panda"


def test_proposer_uses_the_policys_own_samples(trained):
    _, report = trained
    policy = DiffusionPolicy(Path(report["output"]), CONTROLLED_JOINTS, horizon=5, chunk_dt=0.1)
    candidates = PerturbedProposer(policy, ProposerConfig(num_candidates=8)).propose(_observation(0.3, 0.0))
    assert candidates.shape == (8, 5, 7)
    assert np.ptp(candidates[:, -1, 0]) > 0  # N different samples from the diffusion policy, not one copied


def test_object_vector_matches_the_perception_quaternion():
    vector = object_vector(np.array([0.4, 0.1, 0.05]), np.pi / 2)
    assert np.allclose(vector, [0.4, 0.1, 0.05, 0, 0, np.sqrt(0.5), np.sqrt(0.5)])


def test_prefix_conditioned_network_takes_the_prefix_as_input_and_keeps_it():
    model = _model(prefix_frames=3)
    assert model.unet.down[0][0].conv1.block[0].in_channels == 8  # 7 action channels + the prefix mask
    batch = {**_obs(4), "action": torch.rand(4, 8, 7) * 2 - 1, "action_is_pad": torch.zeros(4, 8, dtype=torch.bool)}
    assert torch.isfinite(model.loss(batch, torch.Generator().manual_seed(0)))
    known = torch.linspace(-0.5, 0.5, 8)[:, None].repeat(1, 7)
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0])
    sampler = ChunkSampler(model.config, "dpm", 3)
    out = model.sample(_obs(), 5, sampler, guide=(known, weights), condition=True)
    assert torch.allclose(out[:, :3], known[:3].expand(5, 3, 7), atol=1e-5)  # at most prefix_frames frames
    assert not torch.allclose(out[:, 3], known[3].expand(5, 7), atol=1e-3)
    noisy = torch.randn(2, 8, 7)
    prefix = torch.arange(8)[None].expand(2, 8) < torch.tensor([[0], [2]])
    net_input = model.with_prefix(noisy, known, prefix)
    assert torch.equal(net_input[1, :2, :7], known[:2]) and torch.equal(net_input[0, :, :7], noisy[0])
    assert net_input[:, :, 7].tolist() == prefix.float().tolist()
    assert _model().with_prefix(noisy, known, prefix) is noisy  # a network without prefix training: unchanged
    with pytest.raises(ValueError, match="prefix_frames"):
        _model(prefix_frames=8)


def _zero_network(model: DiffusionModel) -> DiffusionModel:
    """The model with a U-Net that always predicts the normalised chunk 0 (the centre of the action stats)."""
    model.unet.forward = lambda x, t, cond: torch.zeros_like(x[..., : model.config.action_dim])
    return model


def test_relative_actions_are_offsets_from_the_latest_joint_state():
    offsets = {ACTION_OFFSET: _stats(7, -0.1, 0.3)}  # centre +0.1 rad
    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, relative_actions=True, **TINY)
    stats = {"observation.state": _stats(7), "observation.object": _stats(7), "observation.goal": _stats(3),
             "action": _stats(7), **offsets}
    relative = _zero_network(DiffusionModel(config, stats).eval())
    absolute = _zero_network(_model())
    sampler = ChunkSampler(relative.config, "ddim", 2)
    for value in (-0.5, 0.2):
        obs = _obs(value=value)
        obs["observation.state"][0, 0] = 9.0  # an older frame: only the latest one anchors the chunk
        assert torch.allclose(relative.sample(obs, 3, sampler), torch.full((3, 8, 7), value + 0.1), atol=1e-5)
        assert torch.allclose(absolute.sample(obs, 3, sampler), torch.zeros(3, 8, 7), atol=1e-5)
    known = torch.full((8, 7), 0.25)  # an inpainted prefix in joint units stays in joint units
    weights = torch.tensor([1.0, 1.0, 0, 0, 0, 0, 0, 0])
    guided = relative.sample(_obs(value=0.2), 2, sampler, guide=(known, weights))
    assert torch.allclose(guided[:, :2], torch.full((2, 2, 7), 0.25), atol=1e-4)
    batch = relative.sample_batch({k: torch.cat([_obs(value=-0.5)[k], _obs(value=0.2)[k]]) for k in _obs()},
                                  [1, 2], sampler)
    assert torch.allclose(batch[:, 0, 0], torch.tensor([-0.4, 0.3, 0.3]), atol=1e-5)
    with pytest.raises(ValueError, match="action.relative"):
        DiffusionModel(config, {k: v for k, v in stats.items() if k != ACTION_OFFSET})
    with pytest.raises(ValueError, match="joint state"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, relative_actions=True, obs_keys=("observation.goal",))


def test_relative_action_training_stores_offset_statistics(trained, tmp_path):
    dataset, _ = trained
    report = train(TrainOptions(dataset, tmp_path / "rel", steps=10, batch_size=16, threads=1,
                                config={**TINY, "relative_actions": True}))
    model, meta = load_policy(Path(report["output"]))
    assert model.config.relative_actions
    offsets = meta["stats"][ACTION_OFFSET]
    # the demonstrations move joint 0 one STEP per frame: offsets over 8 frames stay within 8 STEPs
    assert 0 < max(offsets["max"][0], -offsets["min"][0]) <= 8 * STEP + 1e-6
    assert offsets["max"][6] == offsets["min"][6] == 0.0  # the constant gripper never moves


def test_sampled_action_error_skips_padded_frames_and_reads_the_first_frame():
    """Chunks sampled 0.1 off the demonstrations' on real frames; padded frames (after an episode's end) hold
    anything and do not count; the first frame is reported on its own."""
    config = DiffusionConfig(joint_names=CONTROLLED_JOINTS, **TINY)

    class Fixed(torch.nn.Module):
        def sample_batch(self, batch, counts, sampler, generator):
            offset = torch.full_like(batch["action"], 0.1)
            offset[:, 0] = 0.3
            return batch["action"] + offset

    actions = torch.zeros(4, config.horizon, len(CONTROLLED_JOINTS))
    padded = torch.zeros(4, config.horizon, dtype=torch.bool)
    padded[:, -2:] = True
    actions[padded] = 50.0  # the sampler's +0.1 is then the only error on real frames
    error = sampled_action_error(Fixed(), {"action": actions, "action_is_pad": padded}, ChunkSampler(config))
    real = config.horizon - 2
    assert error["first"] == pytest.approx(0.3)
    assert error["chunk"] == pytest.approx((0.3 + 0.1 * (real - 1)) / real)


def test_state_velocity_gives_the_encoder_the_latest_joint_step_scaled_by_its_own_statistics(trained, tmp_path):
    dataset, _ = trained
    report = train(TrainOptions(dataset, tmp_path / "vel", steps=10, batch_size=16, threads=1,
                                config={**TINY, "state_velocity": True}))
    model, meta = load_policy(Path(report["output"]))
    step = meta["stats"][STATE_STEP]
    # the demonstrations move joint 0 one STEP per frame toward the goal, either way; the gripper never moves
    assert step["max"][0] == pytest.approx(STEP, rel=1e-4) and step["std"][6] == 0.0
    seen = {}
    model.encoder.register_forward_pre_hook(lambda module, args: seen.update(args[0]))
    q = torch.tensor([0.1, -0.3, 1.6, 0.0, 1.2, 0.0, 0.04])
    obs = {STATE: torch.stack([q - torch.eye(7)[0] * STEP, q])[None],
           "observation.object": torch.zeros(1, 2, 7), "observation.goal": torch.zeros(1, 2, 3)}
    model.encode(obs)
    expected = (STEP - step["mean"][0]) / step["std"][0]
    assert seen[STATE_STEP][0, 0].item() == pytest.approx(float(expected), rel=1e-4)
    with pytest.raises(ValueError, match="state_velocity"):
        DiffusionConfig(joint_names=CONTROLLED_JOINTS, state_velocity=True, n_obs_steps=1)
    legacy = json.loads(DiffusionConfig(joint_names=CONTROLLED_JOINTS).to_json())
    del legacy["state_velocity"]
    assert not DiffusionConfig.from_json(json.dumps(legacy)).state_velocity  # saved before the field
