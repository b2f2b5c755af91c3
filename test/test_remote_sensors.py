"""The remote backend carries the cloud and the tracks a served policy needs (no ROS): the request map, its
bounds, the server's announced inputs and the parameter a node that does not send them must set."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from armpilot.policies.base import Capabilities, Observation, Policy
from armpilot.policies.config import PolicyNodeConfig
from armpilot.policies.policy_client import PolicyServerError
from armpilot.policies.policy_server import PolicyServer, ServerConfig
from armpilot.policies.remote import (MAX_POINTS, RemotePolicy, observation_to_request, request_to_observation,
                                      serve_policy)
from armpilot.policies.wire import packb, unpackb
from armpilot.robot import CONTROLLED_JOINTS

TRACKS_NOW, TRACKS_BEFORE = np.full((32, 8, 3), 0.2, np.float32), np.full((32, 8, 3), 0.1, np.float32)


def _observation(points: np.ndarray | None = None) -> Observation:
    q, here = np.linspace(0.0, 0.6, 7), np.array([0.4, 0.0, 0.05])
    past = Observation(0.9, CONTROLLED_JOINTS, q, here, 0.0, here, tracks=TRACKS_BEFORE)
    return Observation(1.0, CONTROLLED_JOINTS, q, here, 0.0, here, (past,), None, points, TRACKS_NOW)


class CloudPolicy(Policy):
    """A served stand-in that needs the cloud: every joint target is the cloud's mean y."""

    horizon, chunk_dt = 5, 0.1
    capabilities = Capabilities(needs_points=True)

    def reset(self) -> None:
        pass

    def predict_action_chunk(self, obs: Observation) -> np.ndarray:
        if obs.points is None:
            raise ValueError("the policy needs 'observation.points' and no cloud has arrived yet")
        return np.full((self.horizon, len(obs.joint_names)), float(np.nanmean(obs.points[:, 1])))


def test_the_cloud_and_the_tracks_travel_with_their_history_and_bounds():
    cloud = np.full((512, 3), np.nan, np.float32)
    cloud[:10] = [0.4, 0.25, 0.05]
    obs, _, _ = request_to_observation(unpackb(packb(observation_to_request(_observation(cloud)))))
    assert np.array_equal(obs.points, cloud, equal_nan=True) and np.array_equal(obs.tracks, TRACKS_NOW)
    assert np.array_equal(obs.history[0].tracks, TRACKS_BEFORE)  # each frame keeps the tracks of its own time
    request = observation_to_request(_observation(cloud))
    for change, match in (({"observation/points": np.zeros((MAX_POINTS + 1, 3), np.float32)}, "points has shape"),
                          ({"observation/points": np.zeros((10, 4), np.float32)}, "points has shape"),
                          ({"observation/tracks": np.zeros((300, 8, 3), np.float32)}, "tracks has shape"),
                          ({"observation/history/tracks": np.zeros((2, 32, 8, 3), np.float32)},
                           "history/tracks has shape")):
        with pytest.raises(ValueError, match=match):
            request_to_observation({**request, **change})


def test_a_served_cloud_policy_says_what_it_needs_and_a_node_sending_it_gets_answers():
    infer, metadata = serve_policy(CloudPolicy(), CONTROLLED_JOINTS, "cloud")
    assert metadata["inputs"] == ["points"]
    cloud = np.zeros((64, 3), np.float32)
    cloud[:, 1] = 0.25
    with PolicyServer(infer, metadata, ServerConfig(port=0)) as server:
        uri = f"ws://127.0.0.1:{server.address[1]}"
        camera_only = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=5.0)
        assert not camera_only.capabilities.needs_points
        with pytest.raises(PolicyServerError, match="server_inputs to 'color,points'"):
            camera_only.sample_candidates(replace(_observation(), points=None), 1)
        config = replace(PolicyNodeConfig(), backend="remote", server_inputs="points, tracks")
        sending = RemotePolicy(uri, CONTROLLED_JOINTS, timeout=5.0, inputs=config.server_input_names)
        assert sending.capabilities.needs_points and sending.capabilities.needs_tracks
        assert not sending.capabilities.needs_image
        assert np.allclose(sending.sample_candidates(_observation(cloud), 1), 0.25)
    with pytest.raises(ValueError, match="server_inputs"):
        replace(PolicyNodeConfig(), server_inputs="color,depth")
