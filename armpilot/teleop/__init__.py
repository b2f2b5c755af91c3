"""Teleoperation core (pure, no rclpy): differential IK, input mappings, chunk streaming.

``diff_ik`` turns an end-effector twist into joint targets, ``inputs`` maps a
keyboard, a joystick (``sensor_msgs/Joy`` arrays) or a SpaceMouse to a
``TeleopCommand``, ``streamer`` turns commands into short timed chunks for the
safety node, ``terminal`` reads single keys from a terminal without blocking.
"""
