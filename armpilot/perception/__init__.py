"""Perception cores (no ROS): depth -> cloud -> objects, motion tracks, stream pairing."""
