"""One parameter schema: every key a node's YAML sets is a field of a config dataclass the node declares,
and docs/parameters.md is generated from those dataclasses.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from armpilot.robot_profile import PROFILE_KEYS, load_profile, shipped_profiles
from armpilot.ros_nodes.parameter_docs import markdown, node_config_classes

ROOT = Path(__file__).resolve().parent.parent
SKIPPED = {"graph.yaml", "ros2_controllers.yaml", "features.yaml"}  # not node parameters
ROS_BUILT_IN = {"use_sim_time"}
SCHEMAS = {node: {f.name for c in classes for f in dataclasses.fields(c)}
           for node, classes in node_config_classes().items()}


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "config").glob("*.yaml") if p.name not in SKIPPED),
                         ids=lambda p: p.name)
def test_every_yaml_key_is_declared(path):
    for node, body in yaml.safe_load(path.read_text()).items():
        assert node in SCHEMAS, f"{path.name}: no node is called '{node}' (nodes: {sorted(SCHEMAS)})"
        unknown = set(body["ros__parameters"]) - SCHEMAS[node] - ROS_BUILT_IN
        assert not unknown, f"{path.name}: {node} declares no parameter(s) {sorted(unknown)}"


def test_every_node_that_loads_the_robot_gets_it_from_the_graph():
    graph = yaml.safe_load((ROOT / "config" / "graph.yaml").read_text())
    targets = {p.split(".")[0] for p in graph["arguments"]["robot"]["params"]}
    loaders = {n for n, fields in SCHEMAS.items() if "robot" in fields}
    assert loaders - {"teleop"} <= targets, "the robot argument must reach every node that loads a profile"


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_shipped_profiles_use_only_known_keys_and_load(name):
    raw = yaml.safe_load(shipped_profiles()[name].read_text())
    assert set(raw) <= PROFILE_KEYS
    assert load_profile(name).name == name


def test_every_profile_key_is_documented():
    text = (ROOT / "docs" / "robot-profile.md").read_text()
    missing = [k for k in sorted(PROFILE_KEYS) if f"`{k}`" not in text]
    assert not missing, f"docs/robot-profile.md does not describe {missing}"


def test_parameter_reference_is_generated_from_the_dataclasses():
    current = (ROOT / "docs" / "parameters.md").read_text()
    assert current == markdown(), "regenerate: python -m armpilot.ros_nodes.parameter_docs > docs/parameters.md"
