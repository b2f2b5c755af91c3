"""The self filter's joint state is the one at the frame's stamp (``armpilot/perception/joint_history.py``).

Found in session 30 bringing up a Panda from ``panda_collision.urdf``: after a sim reset the first frame can reach
perception before the first joint state of the new episode; filtered with the last episode's pose, the arm at
home was published as an object half a metre over the table, and the pick's goal followed it (1 of 6 failed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.perception.joint_history import FrameJoints, JointHistory


def test_a_frame_newer_than_every_joint_state_waits_then_takes_the_one_at_its_stamp():
    history = JointHistory(max_age=0.5)
    history.add(10.0, np.array([1.0]))  # the last episode's pose
    assert history.verdict(10.008) is FrameJoints.WAIT, "the arm may have moved (or been reset) since"
    history.add(10.008, np.array([0.0]))  # home, after the reset
    history.add(10.016, np.array([0.1]))
    assert history.verdict(10.008) is FrameJoints.READY and history.at(10.008) == pytest.approx([0.0])
    assert history.at(10.013) == pytest.approx([0.1]) and history.at(10.011) == pytest.approx([0.0])


def test_without_a_recent_joint_state_the_pose_is_unknown():
    history = JointHistory(max_age=0.5)
    assert history.verdict(1.0) is FrameJoints.MISSING and history.at(1.0) is None
    history.add(1.0, np.array([0.0]))
    assert history.verdict(1.6) is FrameJoints.MISSING, "joint states stopped: nothing to filter with"
    history.add(5.0, np.array([0.0]))
    assert history.verdict(2.0) is FrameJoints.MISSING, "a frame far older than every kept state"


def test_stamps_going_back_forget_the_history():
    history = JointHistory(max_age=0.5)
    history.add(100.0, np.array([1.0]))
    history.add(1.0, np.array([2.0]))  # a bag replayed in a loop
    assert history.newest_stamp == 1.0 and history.at(1.1) == pytest.approx([2.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=1, max_size=40, unique=True), st.floats(0.0, 10.0))
def test_at_is_the_nearest_state_within_max_age(stamps, query):
    history = JointHistory(max_age=0.3)
    stamps = sorted(stamps)
    for t in stamps:
        history.add(t, np.array([t]))
    nearest = min(stamps, key=lambda t: abs(t - query))
    found = history.at(query)
    if abs(nearest - query) > 0.3:
        assert found is None
    else:
        assert found is not None and abs(found[0] - query) == pytest.approx(abs(nearest - query))


@pytest.mark.parametrize("lag", [0.0, 0.06, 0.2])
def test_frames_wait_for_joint_states_that_lag_the_camera_and_none_starves(lag):
    """Joint states at 100 Hz arriving ``lag`` s after their stamp, a 30 Hz camera's frames 20 ms after theirs.
    With one waiting slot (session 30's first version), each frame replaced the last before its joint state came:
    at 60 ms of lag 1 of 300 frames was processed, silently."""
    from armpilot.perception.joint_history import WaitingFrames

    history, waiting = JointHistory(max_age=0.5), WaitingFrames()
    events = [(k / 100 + lag, "joint", k / 100) for k in range(1000)]
    events += [(k / 30 + 0.02, "frame", k / 30) for k in range(300)]
    processed, dropped = [], 0
    for _, kind, stamp in sorted(events):
        if kind == "joint":
            history.add(stamp, np.array([stamp]))
            ready = waiting.ready(history)
        elif history.verdict(stamp) is FrameJoints.WAIT:
            dropped += waiting.add(stamp, stamp)
            ready = []
        else:
            ready = [stamp]
        for frame in ready:
            if history.verdict(frame) is FrameJoints.MISSING:  # before the first joint state: skipped
                assert frame < lag + 0.02
                continue
            assert abs(history.at(frame)[0] - frame) <= 0.005
            processed.append(frame)
    assert dropped == 0 and len(processed) >= 290 and processed == sorted(processed)
