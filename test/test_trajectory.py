"""Trajectory validation and the JTC-like follower."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.control.trajectory import JointTrajectory, TrajectoryError, TrajectoryFollower, validate_trajectory

NAMES = ("a", "b", "c")


def test_reorders_to_controller_order():
    times, pos, _ = validate_trajectory(("c", "a", "b"), NAMES, [0.1, 0.2], [[3, 1, 2], [6, 4, 5]])
    assert np.array_equal(pos, [[1, 2, 3], [4, 5, 6]])
    assert np.array_equal(times, [0.1, 0.2])


@pytest.mark.parametrize(
    "names, times, positions, reason",
    [
        (NAMES, [], np.zeros((0, 3)), "empty"),
        (("a", "a", "b"), [0.1], [[0, 0, 0]], "duplicate_joint"),
        (("a", "b", "x"), [0.1], [[0, 0, 0]], "unknown_joint"),
        (("a", "b"), [0.1], [[0, 0]], "missing_joint"),
        (NAMES, [0.1], [[0, 0]], "wrong_length"),
        (NAMES, [0.1, 0.2], [[0, 0, 0]], "wrong_length"),
        (NAMES, [0.1], [[0, np.nan, 0]], "not_finite"),
        (NAMES, [np.inf], [[0, 0, 0]], "not_finite"),
        (NAMES, [0.2, 0.1], [[0, 0, 0], [0, 0, 0]], "time_not_increasing"),
        (NAMES, [0.1, 0.1], [[0, 0, 0], [0, 0, 0]], "time_not_increasing"),
        (NAMES, [-0.1], [[0, 0, 0]], "time_not_increasing"),
    ],
)
def test_rejections_name_the_reason(names, times, positions, reason):
    with pytest.raises(TrajectoryError) as info:
        validate_trajectory(names, NAMES, times, positions)
    assert info.value.reason == reason


def test_many_repeated_names_are_named_briefly():
    """10,000 names counted one by one took a second of the sim loop (quadratic); the message names at most 20."""
    names = tuple(f"j{i}" for i in range(10_000)) + tuple(f"j{i}" for i in range(30))  # 30 repeated
    with pytest.raises(TrajectoryError) as info:
        validate_trajectory(names, NAMES, [0.1], [[0.0] * len(names)])
    assert info.value.reason == "duplicate_joint" and str(info.value).count("'j") == 20


def test_wrong_velocity_shape_rejected():
    with pytest.raises(TrajectoryError, match="wrong_length"):
        validate_trajectory(NAMES, NAMES, [0.1], [[0, 0, 0]], [[0, 0]])


def _traj(start, times, positions, velocities=None):
    return JointTrajectory(start, np.asarray(times, float), np.asarray(positions, float),
                           None if velocities is None else np.asarray(velocities, float))


def test_holds_without_trajectory():
    follower = TrajectoryFollower(np.array([1.0, 2.0]))
    q, v = follower.sample(5.0)
    assert np.array_equal(q, [1, 2]) and np.array_equal(v, [0, 0])
    assert not follower.active


def test_linear_interpolation_from_current_desired_state():
    follower = TrajectoryFollower(np.zeros(1))
    follower.set_trajectory(_traj(10.0, [1.0, 2.0], [[1.0], [3.0]]), now=10.0)
    assert follower.sample(10.5)[0] == pytest.approx([0.5])
    assert follower.sample(11.0)[0] == pytest.approx([1.0])
    assert follower.sample(11.5)[0] == pytest.approx([2.0])
    assert follower.sample(11.5)[1] == pytest.approx([2.0])
    assert follower.sample(13.0)[0] == pytest.approx([3.0])
    assert not follower.active  # finished: holds the last point
    assert follower.sample(20.0)[0] == pytest.approx([3.0])


def test_future_start_waits_then_moves():
    follower = TrajectoryFollower(np.zeros(1))
    follower.set_trajectory(_traj(12.0, [1.0], [[1.0]]), now=10.0)
    assert follower.sample(11.0)[0] == pytest.approx([0.0])
    assert follower.sample(12.5)[0] == pytest.approx([0.5])


def test_past_stamp_anchors_at_receipt_and_skips_past_points():
    follower = TrajectoryFollower(np.zeros(1))
    # stamped 1.5 s ago: first point already past, second 0.5 s ahead
    follower.set_trajectory(_traj(8.5, [1.0, 2.0], [[5.0], [1.0]]), now=10.0)
    assert follower.sample(10.0)[0] == pytest.approx([0.0])
    assert follower.sample(10.25)[0] == pytest.approx([0.5])
    assert follower.sample(10.5)[0] == pytest.approx([1.0])


def test_all_points_past_goes_to_last_point():
    follower = TrajectoryFollower(np.zeros(1))
    follower.set_trajectory(_traj(0.0, [1.0], [[2.0]]), now=10.0)
    assert follower.sample(10.01)[0] == pytest.approx([2.0])


def test_new_trajectory_replaces_old_from_where_it_is():
    follower = TrajectoryFollower(np.zeros(1))
    follower.set_trajectory(_traj(0.0, [2.0], [[2.0]]), now=0.0)
    follower.set_trajectory(_traj(1.0, [1.0], [[-1.0]]), now=1.0)  # at 1.0 the old one was at 1.0
    assert follower.sample(1.0)[0] == pytest.approx([1.0])
    assert follower.sample(1.5)[0] == pytest.approx([0.0])
    assert follower.sample(2.0)[0] == pytest.approx([-1.0])


def test_cubic_with_velocities_hits_knots_and_velocities():
    follower = TrajectoryFollower(np.zeros(1))
    follower.set_trajectory(_traj(0.0, [1.0, 2.0], [[1.0], [2.0]], [[1.0], [0.0]]), now=0.0)
    q, v = follower.sample(1.0)
    assert q == pytest.approx([1.0]) and v == pytest.approx([1.0])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=2, max_size=8),
    st.floats(0.0, 1.0),
)
def test_linear_samples_stay_within_knot_hull(values, when):
    """Linear interpolation never overshoots: samples lie within the knots' range."""
    follower = TrajectoryFollower(np.zeros(1))
    times = 0.1 * np.arange(1, len(values) + 1)
    follower.set_trajectory(_traj(0.0, times, np.array(values)[:, None]), now=0.0)
    q, _ = follower.sample(when * times[-1] * 1.2)
    assert min(values + [0.0]) - 1e-9 <= q[0] <= max(values + [0.0]) + 1e-9
