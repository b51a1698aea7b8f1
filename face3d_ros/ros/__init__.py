"""ROS 2 glue: message conversions, markers, parameters and the lifecycle node."""
