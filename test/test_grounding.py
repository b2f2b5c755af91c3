"""Language grounding: the instruction's colour word picks the perceived object reported first (no ROS),
and, through the multi-process sim graph, an instruction changed live sends the arm to another box."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from armpilot.perception.cloud import DetectedObject
from armpilot.policies.base import Observation
from armpilot.features import MAX_INSTRUCTION_CHARS
from armpilot.perception.grounding import (NAMED_COLOURS, colour_word, named_first,
                                           nearest_colour_word)
from armpilot.robot import ArmModel
from armpilot.robot_profile import load_profile
from armpilot.ros_nodes import qos, topics
from armpilot.sim.scenes import COLOUR_NAMES
from armpilot.sim.world import SimWorld
from armpilot.tasks import get_task
from graph_harness import running_graph, sim_graph_nodes


def _object(rgb, size: float = 0.05, x: float = 0.4) -> DetectedObject:
    return DetectedObject(np.array([x, 0.0, 0.02]), 0.0, np.full(3, size), np.asarray(rgb, float), 100)


def test_colour_words_are_found_and_bounded():
    assert colour_word("Touch the BLUE box, not the red one") == "blue"
    assert colour_word("push the box to the goal") is None
    assert colour_word("x" * MAX_INSTRUCTION_CHARS + " red") is None  # past the bound: not searched


def test_an_instruction_past_the_bound_is_refused_by_the_policy_node_and_its_parameter():
    """A 2,000-character instruction on /policy/instruction reached the backend (a VLA's tokenizer, a remote
    server's request) whole; now the node keeps the previous one and says why."""
    import threading
    from types import SimpleNamespace

    from armpilot.policies.config import PolicyNodeConfig
    from ros_nodes.policy_node import PolicyNode

    taken, errors = [], []
    backend = SimpleNamespace(capabilities=SimpleNamespace(takes_instruction=True), set_instruction=taken.append)
    logger = SimpleNamespace(error=errors.append, info=lambda _m: None)
    node = SimpleNamespace(backend=backend, policy_lock=threading.Lock(), get_logger=lambda: logger,
                           config=SimpleNamespace(backend="vla"))
    PolicyNode.on_instruction(node, String(data="pick up the red cube " * 100))
    assert not taken and str(MAX_INSTRUCTION_CHARS) in errors[0]
    PolicyNode.on_instruction(node, String(data="pick up the red cube"))
    assert taken == ["pick up the red cube"]
    with pytest.raises(ValueError, match="instruction"):
        PolicyNodeConfig(instruction="x" * (MAX_INSTRUCTION_CHARS + 1))


@pytest.mark.parametrize("brightness", [0.3, 0.6, 1.0])
def test_every_sim_colour_is_called_by_its_name_in_any_light(brightness):
    for rgb, name in COLOUR_NAMES.items():
        assert nearest_colour_word(np.asarray(rgb) * brightness) == name, (rgb, brightness)
    assert nearest_colour_word((0.5, 0.5, 0.52)) is None  # grey: no colour word
    assert set(COLOUR_NAMES.values()) == set(NAMED_COLOURS)


def test_the_named_object_is_reported_first_else_the_order_stays():
    big_red, small_blue = _object((0.8, 0.2, 0.2), 0.08), _object((0.2, 0.3, 0.8), 0.04)
    green = _object((0.2, 0.7, 0.3))
    ordered, matched = named_first([big_red, small_blue, green], "blue")
    assert matched and ordered == [small_blue, big_red, green]
    assert named_first([big_red, green], "blue") == ([big_red, green], False)  # no blue object: largest first
    assert named_first([big_red, small_blue], None) == ([big_red, small_blue], False)


def test_the_scripted_backend_plans_again_when_the_object_it_goes_to_jumps():
    """Perception may take a new instruction after the policy node: the object then jumps to the named box.
    For tasks whose object stays put the scripted backend re-plans on such a jump; a pushed box moves, so
    push keeps its plan."""
    from armpilot.policies.scripted import ScriptedPolicy
    from armpilot.robot import HOME_POSITION

    arm = ArmModel(load_profile("armpilot"))
    here, there = np.array([0.40, -0.10, 0.02]), np.array([0.40, 0.08, 0.02])

    def observation(obj: np.ndarray) -> Observation:
        return Observation(1.0, arm.joint_names, np.asarray(HOME_POSITION, float), obj, 0.0, obj)

    for task, replans in (("language", True), ("push", False)):
        policy = ScriptedPolicy(arm, task)
        policy.predict_action_chunk(observation(here))
        policy.predict_action_chunk(observation(here + 0.01))  # perception noise: same plan
        assert np.allclose(policy.planned_for, here)
        policy.predict_action_chunk(observation(there))
        assert np.allclose(policy.planned_for, there if replans else here), task


@pytest.mark.graph
def test_an_instruction_changed_live_sends_the_arm_to_the_newly_named_box(tmp_path):
    """The sim names box A; the test names box B, then, once the arm is over B, box C: the arm goes to each."""
    seed = 3
    world = SimWorld(load_profile("armpilot"), get_task("language"), render=False)
    init = world.reset(seed)
    boxes = [(COLOUR_NAMES[world.variation.object_colour], init.object_position)]
    boxes += [(COLOUR_NAMES[d.colour], d.position) for d in world.variation.distractors]
    (first, _), second, third = boxes
    arm = ArmModel(load_profile("armpilot"))
    tcp: list[np.ndarray] = []

    def on_joints(msg: JointState) -> None:
        q = dict(zip(msg.name, msg.position))
        tcp.append(arm.tcp_pose(np.array([q[n] for n in arm.joint_names]))[:3, 3])

    nodes = sim_graph_nodes(drop=("tracks",), task="language", policy="scripted", seed=str(seed))
    with running_graph(nodes, tmp_path) as (graph, probe):
        probe.create_subscription(JointState, topics.JOINT_STATES, on_joints, qos.STATE_QOS)
        instruction = probe.create_publisher(String, topics.POLICY_INSTRUCTION, qos.LATCHED_QOS)
        perception, policy = tmp_path / "perception.log", tmp_path / "policy.log"

        def logged(path, text: str) -> bool:
            return path.is_file() and text in path.read_text()

        # the sim's own instruction (naming box A) must have arrived first, or it could overtake the test's
        probe.spin_until(lambda: logged(perception, f"'{first}'") and logged(policy, f"the {first} box'"), 90,
                         f"perception and policy taking the sim's instruction naming {first}")

        def over(box: tuple[str, np.ndarray]) -> bool:
            return bool(tcp) and np.linalg.norm(tcp[-1][:2] - box[1][:2]) < 0.03

        for name, position in (second, third):
            instruction.publish(String(data=f"touch the {name} box"))
            probe.spin_until(lambda: over((name, position)), 120, f"the tool over the {name} box at {position}")
            graph.check()
        assert not over(second), "the arm left the box named first for the one named live"
