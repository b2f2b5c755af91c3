"""Import stand-in for ROS 2 ``composition_interfaces`` (not on PyPI): launch_ros imports it at import time.

armpilot starts no composable nodes, so the service types only need to exist.
"""
