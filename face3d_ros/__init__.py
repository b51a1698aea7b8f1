"""face3d: per-face 3D meshes, landmarks, head pose, gaze and expression for ROS 2.

Layers (imports point down only):

* :mod:`face3d_ros.core`  -- numpy + torch only; models, geometry, tracking, export.
* :mod:`face3d_ros.ros`   -- rclpy glue: conversions, markers, the lifecycle node.
* :mod:`face3d_ros.tools` -- command-line programs built on the two above.
"""

__version__ = "0.1.0"
