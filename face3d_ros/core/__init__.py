"""The perception engine: numpy + torch only, no ROS imports."""
