"""A simulator reset drops the safety node's commanded path.

Before session 29 the path survived a reset whose jump stayed within its tolerance (velocity limit x
``tracking_allowance``): the SO-101's gripper, commanded to 0 at the end of a pick and reset to 1.0 rad, is exactly
10 rad/s x 0.1 s away. Every first chunk of the next episode was then refused as a ``discontinuity`` against the
last episode's pose, a hold pulled the arm back to it, and once a hold had been sent nothing replaced the path:
every proposal was refused for the rest of the run (2/6 picks, 45 of 285 proposals accepted).
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from std_msgs.msg import String

from armpilot.rejections import Reason
from armpilot.robot import ArmModel
from armpilot.safety.limits import SafetyConfig, check_chunk
from armpilot.safety.state_tracking import ArmState, CommandedPath
from armpilot.safety.supervisor import Supervisor
from armpilot.sim.episode_message import decode_episode, encode_episode
from robot_variants import profile

CFG = SafetyConfig()


def _so101_after_a_pick():
    """The SO-101's limits, a path ending with the gripper closed (0.0), and the reset pose (gripper 1.0)."""
    p = profile("so101")
    lim = ArmModel(p).limits
    g = p.joints.index(p.gripper.joint)
    closed = p.home.copy()
    closed[g] = 0.0
    reset = p.home.copy()
    reset[g] = 1.0
    path = CommandedPath(lim.velocity * CFG.tracking_allowance, lim.continuous)
    path.command(9.0, 9.0, np.array([0.5, 1.0]), np.vstack([closed, closed]), closed)
    return p, lim, path, reset


def test_the_sim_reset_the_path_survived_is_what_refused_the_next_episode():
    p, lim, path, reset = _so101_after_a_pick()
    now = 20.0
    assert path.reference(now, reset) is not None, "the reset is within the path's tolerance: it stays"
    chunk = np.vstack([reset, reset, reset])
    times = np.array([0.06, 0.16, 0.26])
    stale = check_chunk(CFG, lim, p.joints, now, times, chunk, now, reset, reference=path.reference(now, reset),
                        reference_velocity=path.velocity(now))
    assert not stale.accepted and stale.reason == Reason.DISCONTINUITY
    sup = Supervisor(CFG.proposal_timeout, CFG.joint_state_timeout)
    assert sup.sim_reset(now - 0.01, now)
    path.clear()  # what the node does on a new reset
    fresh = check_chunk(CFG, lim, p.joints, now, times, chunk, now, reset, reference=path.reference(now, reset),
                        reference_velocity=path.velocity(now))
    assert fresh.accepted, fresh.detail


def test_a_reset_is_taken_once_and_chunks_stamped_before_it_are_refused():
    sup = Supervisor(CFG.proposal_timeout, CFG.joint_state_timeout)
    assert sup.before_reset(1.0) == "", "no reset yet: nothing is before it"
    assert sup.sim_reset(10.0, 10.05) and not sup.sim_reset(10.0, 10.2), "the latched message again"
    assert "reset" in sup.before_reset(9.9) and sup.before_reset(10.1) == ""
    with pytest.raises(ValueError, match="after the node's clock"):
        sup.sim_reset(100.0, 10.3)  # a stray publisher claiming the future never blocks every chunk
    assert sup.before_reset(10.1) == ""


@pytest.mark.parametrize("data", ["", "{}", '{"start": "soon", "episode": 1}', '{"start": NaN, "episode": 1}',
                                  "x" * 70000, "[1, 2]", '{"start": 1.0}', '{"start": 1.0, "episode": true}',
                                  '{"start": 1.0, "episode": "2"}', '{"start": null, "episode": 2}', "[" * 60000,
                                  '{"episode": 1, "start": 1' + "0" * 400 + "}",
                                  '{"episode": 1, "start": 1.0, "scene": [1]}',
                                  '{"episode": 1, "start": 1.0, "task": 3}'])
def test_an_unreadable_episode_message_is_named(data):
    with pytest.raises(ValueError):
        decode_episode(data)


def test_the_sims_announcement_reads_back():
    info = decode_episode(encode_episode(4, 7, "pick", 12.5, [0.4, -0.1, 0.02], {"distractors": 2}))
    assert (info["episode"], info["seed"], info["task"], info["start"]) == (4, 7, "pick", 12.5)
    assert info["goal"] == [0.4, -0.1, 0.02] and info["scene"] == {"distractors": 2}


def test_the_node_drops_its_path_on_a_new_episode_and_names_a_bad_message():
    from ros_nodes.safety_node import SafetyNode

    p, lim, path, reset = _so101_after_a_pick()
    rejected: list[tuple[str, str]] = []
    node = SimpleNamespace(lock=threading.RLock(), path=path, gripper=None, supervisor=Supervisor(0.3, 0.25),
                           now=lambda: 20.0,
                           reject=lambda r, d: rejected.append((r, d)), state=ArmState(p.joints))
    SafetyNode.on_episode(node, String(data=json.dumps({"episode": 3, "seed": 3, "start": 19.99})))
    assert path.reference(20.0, reset) is None, "the next chunk and any hold start from the measured arm"
    SafetyNode.on_episode(node, String(data="not json"))
    assert rejected and rejected[-1][0] == Reason.MALFORMED and "/sim/episode" in rejected[-1][1]


def test_an_announcement_heard_before_the_first_clock_waits_for_it():
    """Session 30 (UR5 bring-up): the latched /sim/episode can arrive before the first /clock; judged at clock 0 it
    was refused as 'after the node's clock' (a foreign simulator) and that episode's reset was lost."""
    from ros_nodes.safety_node import SafetyNode

    p, lim, path, reset = _so101_after_a_pick()
    rejected: list[tuple[str, str]] = []
    clock = {"now": 0.0}
    node = SimpleNamespace(lock=threading.RLock(), path=path, gripper=None, supervisor=Supervisor(0.3, 0.25),
                           now=lambda: clock["now"], reject=lambda r, d: rejected.append((r, d)),
                           state=ArmState(p.joints), early_episode=None)
    announcement = String(data=json.dumps({"episode": 3, "seed": 3, "start": 19.99}))
    SafetyNode.on_episode(node, announcement)
    assert not rejected and node.early_episode is announcement
    assert path.reference(20.0, reset) is not None, "nothing is decided before the clock runs"
    clock["now"] = 20.0
    SafetyNode.on_episode(node, node.early_episode)  # what on_joint_state does once the clock runs
    assert not rejected and path.reference(20.0, reset) is None


@pytest.mark.graph
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sim_time", [False, True], ids=["real_arm", "sim"])
def test_only_a_safety_node_on_sim_time_listens_to_simulator_resets(tmp_path, sim_time):
    """On a real arm (wall time) a stray simulator in the same domain must not drop the node's path."""
    import time

    from armpilot.graph import NodeSpec
    from armpilot.ros_nodes import topics
    from graph_harness import running_graph

    safety = (NodeSpec("safety", "safety_node", parameter_files=("safety.yaml",),
                       parameters={"use_sim_time": sim_time}),)
    with running_graph(safety, tmp_path) as (_graph, probe):
        probe.spin_until(lambda: probe.get_subscriptions_info_by_topic(topics.JOINT_STATES), 30, "the safety node")
        deadline = time.monotonic() + (5.0 if sim_time else 1.0)
        while time.monotonic() < deadline and not probe.get_subscriptions_info_by_topic(topics.SIM_EPISODE):
            probe.spin_for(0.1)
        assert bool(probe.get_subscriptions_info_by_topic(topics.SIM_EPISODE)) == sim_time
