"""The cloud feature from bag to dataset to loader (``observation.points``), as the policy node selects it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from armpilot.dataset.convert import convert
from armpilot.dataset.loader import LeRobotV3Dataset
from armpilot.dataset.points_feature import MAX_CLOUD_POINTS, NUM_POINTS, POINTS, POINTS_MASK, decode_points_msg
from armpilot.features import load_contract
from synthetic_bags import write_episode


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    bags = tmp_path_factory.mktemp("bags")
    write_episode(bags / "episode_000000", duration=1.0)
    write_episode(bags / "episode_000001", duration=1.0, skip=["/perception/points"], start=300.0)
    out = tmp_path_factory.mktemp("ds") / "dataset"
    assert convert(bags, out, fps=15, progress=False).episodes == 2
    return out


def test_the_converter_writes_the_cloud_as_the_contract_says(converted):
    features = json.loads((converted / "meta/info.json").read_text())["features"]
    contract = load_contract()
    for key, shape in ((POINTS, [NUM_POINTS, 3]), (POINTS_MASK, [NUM_POINTS])):
        assert features[key]["dtype"] == contract[key].dtype and features[key]["shape"] == shape
    assert features[POINTS]["info"]["ros.topic"] == contract[POINTS].topic == "/perception/points"


def test_the_loader_returns_the_held_cloud_and_empty_masks_without_one(converted):
    dataset = LeRobotV3Dataset(converted, n_obs_steps=2, horizon=4)
    episodes = {ep["episode_index"]: ep for ep in dataset.episodes}
    first, second = episodes[0], episodes[1]
    for i in range(first["dataset_from_index"], first["dataset_to_index"]):
        item = dataset[i]
        mask, xyz = item[POINTS_MASK].numpy(), item[POINTS].numpy()
        frame = int(round(xyz[mask][0, 0] / 0.01))  # the synthetic cloud of camera frame k has x = 0.01 k ...
        assert mask.sum() == 40 + frame  # ... and 40 + k points: every point of the held cloud, nothing else
        assert (xyz[~mask] == 0).all()
    assert not any(dataset[i][POINTS_MASK].any() for i in range(second["dataset_from_index"],
                                                                 second["dataset_to_index"]))


def test_an_oversized_cloud_is_refused_before_decoding():
    class Cloud:  # only the size is read before the refusal
        width, height = MAX_CLOUD_POINTS + 1, 1

    with pytest.raises(ValueError, match="points"):
        decode_points_msg(Cloud())


def test_an_oversized_tracks_table_is_refused_before_decoding():
    """Before session 30 ``/perception/tracks`` had no bound, unlike the cloud."""
    from armpilot.dataset.tracks_feature import MAX_TRACK_ROWS, decode_tracks_msg

    class Tracks:  # only the size is read before the refusal
        width, height = MAX_TRACK_ROWS // 2 + 1, 2

    with pytest.raises(ValueError, match="rows"):
        decode_tracks_msg(Tracks())
