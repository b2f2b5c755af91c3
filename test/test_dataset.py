"""Resampler, bag reader, LeRobotDataset v3 converter and loader on synthetic MCAP bags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_bags import track_table, write_episode

from armpilot.cli import main as cli_main
from armpilot.dataset.bag_reader import BagError, read_episode
from armpilot.dataset.convert import convert
from armpilot.dataset.depth_png import decode_depth_png
from armpilot.dataset.lerobot_v3 import DatasetWriteError
from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.dataset.resampler import (
    ClockJumpError,
    LiveSampler,
    ResampleError,
    Stream,
    resample,
    split_at_clock_jumps,
)
from armpilot.dataset.stats import IMAGE_STRIDE
from armpilot.dataset.tracks_feature import TRACKS, TRACKS_MASK, column_array
from armpilot.ros_nodes import topics

S = 1_000_000_000


# ------------------------------------------------------------------ resampler
def test_different_rates_hold_and_interpolate():
    fast = Stream("/a", np.arange(0, S + 1, S // 100), np.arange(101, dtype=float)[:, None], interpolate=True)
    slow = Stream("/b", np.arange(0, S + 1, S // 4), np.arange(5))
    out = resample([fast, slow], fps=10)
    assert out.ticks.tolist() == [k * S // 10 for k in range(11)]
    assert np.allclose(out.values["/a"][:, 0], np.arange(11) * 10)
    assert out.values["/b"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4]
    assert (out.source_stamps["/b"] <= out.ticks).all()
    assert out.staleness["/b"][2] == 2 * S // 10


def test_duplicate_stamps_keep_last():
    s = Stream("/d", np.array([0, S, S, 2 * S]), np.array([1, 2, 3, 4]))
    assert resample([s], fps=1).values["/d"].tolist() == [1, 3, 4]


def test_clock_jump_names_topic_and_stamp():
    s = Stream("/joint_states", np.array([0, S, S // 2]), np.zeros(3))
    with pytest.raises(ClockJumpError, match=r"'/joint_states'.*0\.500000000 s"):
        resample([s], fps=10)
    assert split_at_clock_jumps(s.stamps) == [slice(0, 2), slice(2, 3)]
    live = LiveSampler(["/x"])
    live.push("/x", 5, np.zeros(1))
    with pytest.raises(ClockJumpError):
        live.push("/x", 4, np.zeros(1))


def test_late_topic_drops_leading_ticks():
    early = Stream("/early", np.arange(0, 2 * S + 1, S // 10), np.zeros(21))
    late = Stream("/late", np.array([S // 2 + 1, S]), np.ones(2))
    out = resample([early, late], fps=10)
    assert out.ticks[0] == 6 * S // 10 and out.dropped_leading == 6
    assert out.late_topics == {"/late": S // 2 + 1}
    with pytest.raises(ResampleError, match="/empty"):
        resample([early, Stream("/empty", np.zeros(0, np.int64), np.zeros(0))], fps=10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3 * S), min_size=1, max_size=30), min_size=1, max_size=4),
       st.sampled_from([5, 10, 15, 30]))
def test_property_monotonic_and_causal(stamp_lists, fps):
    streams = [Stream(f"/t{k}", np.sort(np.array(v, np.int64)), np.arange(len(v), dtype=float), k == 0)
               for k, v in enumerate(stamp_lists)]
    try:
        out = resample(streams, fps=fps)
    except ResampleError:
        return  # no tick where every stream has a sample
    assert (np.diff(out.ticks) > 0).all()
    for topic, src in out.source_stamps.items():
        assert (src <= out.ticks).all() and (out.staleness[topic] >= 0).all()


# ------------------------------------------------------------------ converter
@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bags")
    write_episode(root / "episode_000000", duration=2.0, task="pick")
    write_episode(root / "episode_000001", duration=1.5, task="reach", object_delay=0.3, start=300.0)
    write_episode(root / "episode_000002", skip=["/perception/objects"])
    write_episode(root / "episode_000003", duration=1.0)
    mcap = next((root / "episode_000003").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    return root


@pytest.fixture(scope="module")
def dataset(bags, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("ds") / "dataset"
    return out, convert(bags, out, fps=15, progress=False)


def test_bad_episodes_skipped_with_clear_reasons(dataset):
    _, summary = dataset
    assert summary.episodes == 2 and set(summary.skipped) == {"episode_000002", "episode_000003"}
    assert "episode_000002" in summary.skipped["episode_000002"]
    assert "'/perception/objects' is missing" in summary.skipped["episode_000002"]
    assert "episode_000003" in summary.skipped["episode_000003"]
    assert "truncated or corrupt" in summary.skipped["episode_000003"]


def test_v3_layout_info_and_schema(dataset):
    root, summary = dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 15
    for key in ("total_episodes", "total_frames", "total_tasks", "chunks_size", "data_files_size_in_mb",
                "video_files_size_in_mb", "splits", "data_path", "video_path", "features", "robot_type"):
        assert key in info
    assert info["total_episodes"] == 2 and info["total_frames"] == summary.frames and info["total_tasks"] == 2
    data = root / info["data_path"].format(chunk_index=0, file_index=0)
    video = root / info["video_path"].format(video_key="observation.images.color", chunk_index=0, file_index=0)
    assert data.is_file() and video.is_file()
    assert (root / "meta/episodes/chunk-000/file-000.parquet").is_file()
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [7] and len(feats["observation.state"]["names"]) == 7
    assert feats["observation.images.color"]["dtype"] == "video"
    assert feats["observation.images.depth"]["info"]["image.is_depth_map"] is True
    schema = pq.read_schema(data)
    assert set(schema.names) == set(feats) - {"observation.images.color"}
    for key in ("observation.state", "action", "observation.object"):
        assert schema.field(key).type == pa.list_(pa.float32(), feats[key]["shape"][0])
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(key).type == pa.int64()
    assert schema.field("timestamp").type == pa.float32()
    assert schema.field("observation.images.depth").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "pick"}, {"task_index": 1, "task": "reach"}]


def test_frames_episodes_and_stats_consistent(dataset):
    root, summary = dataset
    frames = pq.read_table(root / "data/chunk-000/file-000.parquet")
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert frames.num_rows == sum(e["length"] for e in episodes) == summary.frames
    assert frames.column("index").to_pylist() == list(range(frames.num_rows))
    ep_index = frames.column("episode_index").to_numpy()
    ts = frames.column("timestamp").to_numpy()
    for e in episodes:
        lo, hi = e["dataset_from_index"], e["dataset_to_index"]
        assert hi - lo == e["length"] and (ep_index[lo:hi] == e["episode_index"]).all()
        assert (np.diff(ts[lo:hi]) > 0).all() and ts[lo] == 0.0
        assert np.isclose(e["videos/observation.images.color/from_timestamp"], lo / 15)
    assert episodes[0]["dataset_to_index"] == episodes[1]["dataset_from_index"]
    stats = json.loads((root / "meta/stats.json").read_text())
    for key in ("observation.state", "action", "observation.object", "observation.goal"):
        x = np.stack(frames.column(key).to_numpy(zero_copy_only=False)).astype(np.float64)
        for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
            assert np.allclose(stats[key][name], fn(x, axis=0), atol=1e-6), (key, name)
        assert stats[key]["count"] == [x.shape[0]]
    depth = np.stack([decode_depth_png(d["bytes"]) for d in frames.column("observation.images.depth").to_pylist()])
    sub = depth[:, ::IMAGE_STRIDE, ::IMAGE_STRIDE].astype(np.float64)
    assert np.isclose(stats["observation.images.depth"]["mean"][0][0][0], sub.mean())
    # depth survives losslessly: frame k of episode 0 is 1000 + 10 k + column ramp (mm)
    assert (depth[3] == 1030 + np.arange(64)[None, :]).all()
    # action = first point of the latest command (reordered to joint-state order), state interpolated
    from synthetic_bags import joint_positions
    state = np.stack(frames.column("observation.state").to_numpy(zero_copy_only=False))
    assert np.allclose(state[3], joint_positions(3 / 15), atol=1e-5)
    action = np.stack(frames.column("action").to_numpy(zero_copy_only=False))
    assert np.allclose(action[3], joint_positions(0.2 + 0.1), atol=1e-5)  # command sent at 0.2 s
    # between commands the label follows the active command's trajectory 0.1 s ahead (no 5 Hz staircase)
    for k in (4, 5):
        assert np.allclose(action[k], joint_positions(k / 15 + 0.1), atol=1e-3), k
    # the task goal from /sim/episode is a per-frame column (the diffusion policy's goal input)
    goal = np.stack(frames.column("observation.goal").to_numpy(zero_copy_only=False))
    assert np.allclose(goal, [0.45, 0.1, 0.05])


def test_video_decodes_to_frame_count_and_size(dataset):
    root, summary = dataset
    with av.open(str(root / "videos/observation.images.color/chunk-000/file-000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == summary.frames and frames[0].shape == (48, 64, 3)
    assert abs(int(frames[0][4:44, 4:60, 1].mean()) - 128) <= 3


def test_loader_shapes_and_padding(dataset):
    root, summary = dataset
    ds = LeRobotV3Dataset(root, n_obs_steps=2, horizon=8, decode_video=True, decode_depth=True)
    assert len(ds) == summary.frames
    item = ds[0]
    assert item["observation.state"].shape == (2, 7) and item["action"].shape == (8, 7)
    assert item["observation.object"].shape == (2, 7)
    assert item["observation.images.color"].shape == (2, 3, 48, 64)
    assert item["observation.images.depth"].shape == (2, 1, 48, 64)
    assert not item["action_is_pad"].any()
    last = ds[ds.episodes[0]["dataset_to_index"] - 1]
    assert last["action_is_pad"].sum() == 7 and (last["action"][1:] == last["action"][0]).all()
    norm = ds.normalizer("action")
    assert norm(item["action"]).abs().max() <= 1.0 + 1e-5
    assert np.allclose(norm.inverse(norm(item["action"])), item["action"], atol=1e-5)


# ------------------------------------------------------------------ bad input
def test_reader_errors_name_folder_and_topic(bags):
    with pytest.raises(BagError, match=r"episode_000002.*'/perception/objects' is missing"):
        read_episode(bags / "episode_000002")
    with pytest.raises(BagError, match=r"episode_000003.*truncated or corrupt"):
        read_episode(bags / "episode_000003")


def test_output_never_overwritten_and_unwritable(bags, dataset, tmp_path):
    root, _ = dataset
    with pytest.raises(DatasetWriteError, match="--overwrite"):
        convert(bags, root, progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetWriteError, match="cannot write"):
        convert(bags, blocker / "dataset", progress=False)


def test_a_truncated_bag_converts_its_readable_part_with_a_note(tmp_path):
    write_episode(tmp_path / "bags" / "episode_000000", duration=6.0)
    mcap = next((tmp_path / "bags" / "episode_000000").glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: int(mcap.stat().st_size * 0.8)])
    summary = convert(tmp_path / "bags", tmp_path / "ds", progress=False)
    assert summary.episodes == 1 and not summary.skipped and summary.frames > 15
    assert "read before the damage" in summary.recovered["episode_000000"]
    assert any("recovered" in line for line in summary.lines())


def test_overwrite_replaces_only_a_dataset_and_never_the_input(bags, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    with pytest.raises(DatasetWriteError, match="not a LeRobot dataset"):
        convert(bags, notes, overwrite=True, progress=False)
    assert (notes / "keep.txt").read_text() == "mine"
    for output in (bags, bags / "dataset", bags.parent):
        with pytest.raises(ValueError, match="overlaps the input bags"):
            convert(bags, output, overwrite=True, progress=False)
    assert (bags / "episode_000000" / "metadata.yaml").is_file()


def test_cli_convert_overwrite(bags, tmp_path, capsys):
    one = tmp_path / "bags"
    shutil.copytree(bags / "episode_000000", one / "episode_000000")
    out = tmp_path / "ds"
    assert cli_main(["convert", str(one), "--output", str(out), "--fps", "10"]) == 0
    assert "episodes: 1" in capsys.readouterr().out
    assert cli_main(["convert", str(one), "--output", str(out)]) == 1
    assert cli_main(["convert", str(one), "--output", str(out), "--overwrite"]) == 0
    assert json.loads((out / "meta/info.json").read_text())["fps"] == 15


# ------------------------------------------------------------------ motion tracks
def _expected_tracks(table: np.ndarray, k: int = 32, horizon: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python reference of the selection rule: most valid steps, ties lowest id; oldest step first."""
    by_id: dict[int, list] = {}
    for r in table:
        if -horizon < int(r["step"]) <= 0:
            by_id.setdefault(int(r["track_id"]), []).append(r)
    def valid(r) -> bool:
        return all(np.isfinite(r[c]) for c in "xyz")

    order = sorted(by_id, key=lambda tid: (-sum(valid(r) for r in by_id[tid]), tid))[:k]
    xyz, mask = np.zeros((k, horizon, 3), np.float32), np.zeros((k, horizon), bool)
    for slot, tid in enumerate(order):
        for r in by_id[tid]:
            if valid(r):
                xyz[slot, int(r["step"]) + horizon - 1] = [r["x"], r["y"], r["z"]]
                mask[slot, int(r["step"]) + horizon - 1] = True
    return xyz, mask


def _tracks_from_parquet(root: Path) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    frames = pq.read_table(root / "data/chunk-000/file-000.parquet")
    return column_array(frames.column(TRACKS), 3), column_array(frames.column(TRACKS_MASK), 2), frames


def test_tracks_feature_shape_values_and_mask(dataset):
    root, summary = dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"][TRACKS]["shape"] == [32, 8, 3] and info["features"][TRACKS]["dtype"] == "float32"
    assert info["features"][TRACKS_MASK] == {"dtype": "bool", "shape": [32, 8], "names": ["tracks", "steps"]}
    assert info["features"][TRACKS]["names"] == ["tracks", "steps", "xyz"]
    tracks, mask, frames = _tracks_from_parquet(root)
    assert tracks.shape == (summary.frames, 32, 8, 3) and tracks.dtype == np.float32
    assert mask.shape == (summary.frames, 32, 8) and mask.dtype == bool
    assert (tracks[~mask] == 0).all() and np.isfinite(tracks).all()
    depth = [decode_depth_png(d["bytes"]) for d in frames.column("observation.images.depth").to_pylist()]
    for row, d in enumerate(depth):  # depth (held like the tracks) tells the camera frame of each row
        camera_frame = (int(d[0, 0]) - 1000) // 10
        xyz, m = _expected_tracks(track_table(camera_frame))
        assert (mask[row] == m).all(), row
        assert np.allclose(tracks[row], xyz, atol=1e-6), row
    late = mask.sum(axis=(1, 2)).argmax()
    assert mask[late].all(axis=1).sum() > 16  # many full-length tracks later on, and some NaN-z holes
    assert (~mask[late]).any()
    full = mask[late].all(axis=1)
    step = np.diff(tracks[late][full], axis=1)  # linear motion: constant per-frame displacement
    assert np.allclose(step, [0.002, -0.003, 0.001], atol=1e-5)


def test_tracks_stats_over_valid_points_only(dataset):
    root, _ = dataset
    tracks, mask, _ = _tracks_from_parquet(root)
    stats = json.loads((root / "meta/stats.json").read_text())
    valid = tracks[mask].astype(np.float64)
    assert stats[TRACKS]["count"] == [int(mask.sum())] and mask.sum() < mask.size
    for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std)):
        assert np.allclose(stats[TRACKS][name], fn(valid, axis=0), atol=1e-5), name
    assert min(stats[TRACKS]["min"]) > -0.5 and stats[TRACKS]["min"][0] > 0.29  # zero padding not counted
    assert TRACKS_MASK not in stats


def test_bag_without_tracks_gets_all_false_masks(bags, tmp_path):
    src = tmp_path / "bags"
    shutil.copytree(bags / "episode_000000", src / "episode_000000")
    write_episode(src / "episode_000001", duration=1.0, skip=["/perception/tracks"])
    summary = convert(src, tmp_path / "ds", fps=15, progress=False)
    assert summary.episodes == 2
    tracks, mask, frames = _tracks_from_parquet(tmp_path / "ds")
    second = frames.column("episode_index").to_numpy() == 1
    assert second.any() and not mask[second].any() and (tracks[second] == 0).all()
    assert mask[~second].any()
    ds = LeRobotV3Dataset(tmp_path / "ds", n_obs_steps=2, horizon=4)
    assert not ds[int(np.flatnonzero(second)[0])][TRACKS_MASK].any()


def test_no_tracks_anywhere_omits_the_feature(tmp_path):
    write_episode(tmp_path / "bags" / "episode_000000", duration=1.0, skip=["/perception/tracks"])
    convert(tmp_path / "bags", tmp_path / "ds", fps=15, progress=False)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert TRACKS not in info["features"] and TRACKS_MASK not in info["features"]
    schema = pq.read_schema(tmp_path / "ds/data/chunk-000/file-000.parquet")
    assert TRACKS not in schema.names and TRACKS not in json.loads((tmp_path / "ds/meta/stats.json").read_text())
    item = LeRobotV3Dataset(tmp_path / "ds")[0]
    assert TRACKS not in item and TRACKS_MASK not in item


def test_loader_returns_tracks(dataset):
    root, _ = dataset
    tracks, mask, _ = _tracks_from_parquet(root)
    ds = LeRobotV3Dataset(root, n_obs_steps=3, horizon=4)
    item = ds[5]
    assert item[TRACKS].shape == (3, 32, 8, 3) and item[TRACKS].dtype == torch.float32
    assert item[TRACKS_MASK].shape == (3, 32, 8) and item[TRACKS_MASK].dtype == torch.bool
    assert np.array_equal(item[TRACKS].numpy(), tracks[3:6]) and np.array_equal(item[TRACKS_MASK].numpy(), mask[3:6])
    first = ds[0]  # history clamped at the episode start
    assert np.array_equal(first[TRACKS_MASK].numpy(), mask[[0, 0, 0]])


def test_commands_take_over_when_received_even_if_stamped_earlier(tmp_path: Path) -> None:
    """A chunk stamped at its observation arrives after a zero-stamped hold: not a clock jump."""
    from armpilot.dataset.bag_reader import read_episode

    episode = read_episode(write_episode(tmp_path / "episode_000000", command_lag=0.15))
    grid = episode.command_grid
    assert grid is not None and np.all(np.diff(grid.stamps) > 0)
    plain = read_episode(write_episode(tmp_path / "episode_000001"))
    # a command stamped 0.15 s before it was received is 0.15 s further along its trajectory on arrival
    lagged = [k for k in range(len(grid.stamps)) if k % 3 != 2]
    assert not np.allclose(grid.values[lagged[1]], plain.command_grid.values[lagged[1]])


def test_the_previous_episodes_tail_is_left_out(tmp_path):
    """Joint states, frames and commands from before the reset the sim announced are not this episode's."""
    whole = read_episode(write_episode(tmp_path / "whole", duration=2.0, start=100.0))
    trimmed = read_episode(write_episode(tmp_path / "bags" / "episode_000000", duration=2.0, start=100.0,
                                         reset_at=0.55))
    start = round(100.55 * 1e9)
    for topic in (topics.JOINT_STATES, topics.COLOR_IMAGE, topics.PERCEPTION_POINTS, topics.CONTROLLER_COMMAND):
        assert trimmed.topics[topic].stamps.min() >= start, topic
        assert whole.topics[topic].stamps.min() < start, topic  # the same bag without the announcement keeps it
    assert len(trimmed.topics[topics.JOINT_STATES].stamps) == 146  # 100 Hz from 100.55 to 102.0 s, both included
    summary = convert(tmp_path / "bags", tmp_path / "ds", progress=False)
    assert summary.episodes == 1 and summary.frames <= 1.45 * 15 + 1  # 15 Hz over what is left
