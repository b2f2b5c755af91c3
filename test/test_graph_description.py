"""The graph description: arguments reach nodes, command lines are what launch would build."""

from __future__ import annotations

import pytest

from armpilot.graph import load_graphs, parse_value, remapped, resolve, ros_arguments
from armpilot.paths import share_dir


@pytest.fixture(scope="module")
def graphs():
    return load_graphs()


def test_graphs_present(graphs):
    assert {"sim", "real", "gazebo"} <= set(graphs)
    for graph in graphs.values():
        assert graph.description
        for argument in graph.arguments:
            assert argument.description, f"argument {argument.name} needs a description"


def test_arguments_set_parameters(graphs):
    nodes = {n.name: n for n in resolve(graphs["sim"], {"task": "pick", "width": "320"})}
    assert nodes["sim"].parameters["task"] == "pick"
    assert nodes["policy"].parameters["task"] == "pick"
    assert nodes["sim"].parameters["width"] == 320
    assert nodes["policy"].parameters["use_sim_time"] is True


def test_argument_remaps_controller_topic(graphs):
    nodes = {n.name: n for n in resolve(graphs["real"], {"controller_topic": "/ur/jtc/joint_trajectory"})}
    assert ("/arm_controller/joint_trajectory", "/ur/jtc/joint_trajectory") in nodes["safety"].remappings
    default = {n.name: n for n in resolve(graphs["real"])}
    assert default["safety"].remappings == ()


@pytest.mark.parametrize("graph", ["sim", "record", "teleop"])
def test_sim_graphs_give_the_command_topic_a_private_name(graphs, graph):
    """The sim controller, the safety node and the recorder meet on a name no stock tool publishes on."""
    nodes = resolve(graphs[graph])
    stock = "/arm_controller/joint_trajectory"
    names = {remapped(nodes, n.name, stock) for n in nodes if n.name in ("sim", "safety", "recorder")}
    assert names == {"/sim/arm_controller/joint_trajectory"}


def test_a_nodes_own_remap_wins_over_the_graphs(tmp_path):
    (tmp_path / "graph.yaml").write_text(
        "arguments: {}\ngraphs:\n  g:\n    remap: {/a: /graph_a}\n    nodes:\n"
        "      - {name: own, executable: e, remap: {/a: /own_a}}\n      - {name: other, executable: e}\n")
    nodes = resolve(load_graphs(tmp_path / "graph.yaml")["g"])
    assert remapped(nodes, "own", "/a") == "/own_a"
    assert remapped(nodes, "other", "/a") == "/graph_a"
    assert remapped(nodes, "other", "/b") == "/b"


def test_unknown_argument_is_named(graphs):
    with pytest.raises(KeyError, match="colour"):
        resolve(graphs["sim"], {"colour": "red"})


def test_ros_arguments_command_line(graphs):
    node = {n.name: n for n in resolve(graphs["sim"], {"task": "push"})}["policy"]
    args = ros_arguments(node, share_dir() / "config")
    assert args[:3] == ["--ros-args", "-r", "__node:=policy"]
    assert "--params-file" in args and str(share_dir() / "config" / "policy.yaml") in args
    assert "use_sim_time:=true" in args and "task:=push" in args


@pytest.mark.parametrize("text, value", [("3", 3), ("1.5", 1.5), ("true", True), ("pick", "pick"), ("", "")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_whole_number_for_a_float_argument_stays_float(graphs):
    nodes = {n.name: n for n in resolve(graphs["sim"], {"camera_rate": "15", "width": "320"})}
    assert isinstance(nodes["sim"].parameters["camera_rate_hz"], float)
    assert isinstance(nodes["sim"].parameters["width"], int)
