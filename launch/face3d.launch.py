"""Launch the face3d lifecycle node, configure and activate it, and optionally RViz.

    ros2 launch face3d_ros face3d.launch.py camera:=/camera \
        image:=image_raw camera_info:=camera_info device:=auto use_rviz:=true

Arguments: ``camera`` (namespace of the camera topics), ``image`` and ``camera_info`` (topic
names inside it), ``params_file`` (default: the installed config/face3d.yaml, the one source
of parameter defaults), ``device`` (auto, cpu, cuda, cuda:N), ``namespace`` (of the node) and
``use_rviz``. The node starts unconfigured (autostart false) and this file drives it through
configure and activate with lifecycle events.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def generate_launch_description():
    """Node, lifecycle transitions and RViz."""
    share = get_package_share_directory("face3d_ros")
    args = [
        DeclareLaunchArgument("camera", default_value="/camera",
                              description="Namespace of the camera topics"),
        DeclareLaunchArgument("image", default_value="image_raw",
                              description="Image topic inside the camera namespace"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="CameraInfo topic inside the camera namespace"),
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "face3d.yaml"),
                              description="Parameters of the node"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="Torch device: auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the face3d node and its outputs"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="Start RViz with rviz/face3d.rviz"),
    ]
    camera = LaunchConfiguration("camera")
    node = LifecycleNode(
        package="face3d_ros",
        executable="face3d_node",
        name="face3d",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"),
                    {"device": LaunchConfiguration("device"), "autostart": False}],
        remappings=[
            ("image", PathJoinSubstitution([camera, LaunchConfiguration("image")])),
            ("camera_info", PathJoinSubstitution([camera, LaunchConfiguration("camera_info")])),
        ],
    )
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(node),
        transition_id=Transition.TRANSITION_CONFIGURE))
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_ACTIVATE))]))
    rviz = Node(
        package="rviz2", executable="rviz2", name="face3d_rviz", output="log",
        arguments=["-d", os.path.join(share, "rviz", "face3d.rviz")],
        condition=IfCondition(LaunchConfiguration("use_rviz")))
    return LaunchDescription(args + [node, activate, configure, rviz])
