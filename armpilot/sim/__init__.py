"""MuJoCo simulation of the arm, its table scene and the tasks (pure, no ROS)."""
