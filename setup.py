"""armpilot: ament_python package and pip distribution.

The design card's top-level folders become one import namespace so nothing
clashes in a shared ROS workspace: ``armpilot/`` is ``armpilot`` (pure cores),
``ros_nodes/`` is ``armpilot.ros_nodes`` (rclpy shells) and ``policies/`` is
``armpilot.policies`` (PyTorch, no ROS).

How: ``armpilot/ros_nodes`` and ``armpilot/policies`` are relative symlinks to
the top-level folders, so the package is one plain tree. A ``package_dir``
mapping did the same for pip and plain ``colcon build`` but not for
``colcon build --symlink-install``, which links only the ``armpilot`` folder
into its build directory ("package directory 'ros_nodes' does not exist").
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "armpilot"
packages = find_packages(include=["armpilot", "armpilot.*"])  # follows the two symlinks

NODES = {
    "sim_node": "armpilot.ros_nodes.sim_node:main",
    "policy_node": "armpilot.ros_nodes.policy_node:main",
    "safety_node": "armpilot.ros_nodes.safety_node:main",
    "perception_node": "armpilot.ros_nodes.perception_node:main",
    "tracks_node": "armpilot.ros_nodes.tracks_node:main",
    "realsense_node": "armpilot.ros_nodes.realsense_node:main",
    "recorder_node": "armpilot.ros_nodes.recorder_node:main",
    "teleop_node": "armpilot.ros_nodes.teleop_node:main",
    "player_node": "armpilot.ros_nodes.player_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=packages,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + PACKAGE + "/urdf", glob("urdf/*.urdf")),
        *[("share/" + PACKAGE + "/" + folder, glob(folder + "/*.json") + glob(folder + "/*.safetensors"))
          for folder in sorted(glob("checkpoints/*"))],
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="armpilot developers",
    maintainer_email="armpilot@example.org",
    description="Run learned policies (diffusion, VLA) on robot arms through a safety/verifier node.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["armpilot = armpilot.cli:main"],
    },
)
