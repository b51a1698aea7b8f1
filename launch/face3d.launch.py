"""Launch the face3d perception node and the people node, configure and activate them, and
optionally RViz.

    ros2 launch face3d_ros face3d.launch.py camera:=/camera \
        image:=image_raw camera_info:=camera_info use_rviz:=true [device:=cuda] [people:=false]

Arguments: ``camera`` (namespace of the camera topics), ``image`` and ``camera_info`` (topic
names inside it), ``params_file`` (default: the installed config/face3d.yaml, the one source
of parameter defaults, for both nodes), ``device`` (empty: the params file's value; else auto,
cpu, cuda or cuda:N), ``hri`` and ``publish_tf`` (empty: the params file's; else true or false:
the ROS4HRI topics and the face/gaze TF frames), ``people`` (default true: also start
``face3d_people``, the enrolled people, re-identification and the enroll_face action),
``namespace`` (of both nodes) and ``use_rviz``.

Each node starts unconfigured (autostart false). This file emits configure, and activate once
the node has gone from configuring to inactive (only then: a node the user deactivates stays
inactive). When a node process ends (a bad parameter, missing models, a crash, the shutdown
transition) the whole launch ends with it instead of waiting for a node that is gone. RViz
starts only where rviz2 is installed (else a warning, and face3d runs alone), with its topics
moved into ``namespace``.
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction,
                            RegisterEventHandler)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown, matches_action
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from face3d_ros.ros.launch_helpers import (find_executable, launch_switch, node_parameters,
                                           normalize_namespace, people_parameters,
                                           rviz_config_text)


def _end_launch(event, context, executable="face3d_node"):
    """When a node process ends, end the launch (unless it is ending already)."""
    if getattr(context, "is_shutdown", False):
        return None
    return [LogInfo(msg=f"{executable} ended (exit status {event.returncode}); stopping the "
                        "launch"),
            EmitEvent(event=Shutdown(reason=f"{executable} ended"))]


def _managed(node, executable):
    """Configure ``node`` now, activate it once configured, end the launch when it ends."""
    configure = EmitEvent(event=ChangeState(
        lifecycle_node_matcher=matches_action(node),
        transition_id=Transition.TRANSITION_CONFIGURE))
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(
            lifecycle_node_matcher=matches_action(node),
            transition_id=Transition.TRANSITION_ACTIVATE))]))
    end_with_node = RegisterEventHandler(OnProcessExit(
        target_action=node,
        on_exit=lambda event, context: _end_launch(event, context, executable)))
    return [node, activate, end_with_node, configure]


def _setup(context, share):
    """The nodes, their transitions and RViz, from the launch arguments' values."""
    arg = context.launch_configurations
    namespace = normalize_namespace(arg["namespace"])
    camera = arg["camera"]
    node = LifecycleNode(
        package="face3d_ros",
        executable="face3d_node",
        name="face3d",
        namespace=namespace,
        output="screen",
        parameters=node_parameters(arg["params_file"], arg["device"].strip(), arg["hri"],
                                   arg["publish_tf"]),
        remappings=[
            ("image", PathJoinSubstitution([camera, arg["image"]])),
            ("camera_info", PathJoinSubstitution([camera, arg["camera_info"]])),
        ],
    )
    actions = _managed(node, "face3d_node")
    if launch_switch("people", arg["people"]):
        people = LifecycleNode(
            package="face3d_ros",
            executable="face3d_people",
            name="face3d_people",
            namespace=namespace,
            output="screen",
            parameters=people_parameters(arg["params_file"]),
            # faces, people and enrolled_faces stay relative (beside the perception node's);
            # the image only while an enrolment runs.
            remappings=[("image", PathJoinSubstitution([camera, arg["image"]]))],
        )
        actions += _managed(people, "face3d_people")
    if launch_switch("use_rviz", arg["use_rviz"]):
        if find_executable("rviz2", "rviz2") is None:
            actions.append(LogInfo(msg="WARNING: use_rviz is true but rviz2 is not installed "
                                       "(install ros-<distro>-rviz2); face3d runs without it"))
        else:
            template = os.path.join(share, "rviz", "face3d.rviz")
            config = template
            if namespace:
                with open(template, encoding="utf-8") as f:
                    text = rviz_config_text(f.read(), namespace)
                handle, config = tempfile.mkstemp(prefix="face3d_", suffix=".rviz")
                with os.fdopen(handle, "w", encoding="utf-8") as f:
                    f.write(text)
            actions.append(Node(package="rviz2", executable="rviz2", name="face3d_rviz",
                                namespace=namespace, output="log", arguments=["-d", config]))
    return actions


def generate_launch_description():
    """Launch arguments, then the nodes, their transitions and RViz (built at launch time)."""
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
        DeclareLaunchArgument("device", default_value="",
                              description="Torch device (auto, cpu, cuda, cuda:N); empty: "
                                          "the params file's"),
        DeclareLaunchArgument("hri", default_value="",
                              description="ROS4HRI (REP-155) face topics (true/false); empty: "
                                          "the params file's"),
        DeclareLaunchArgument("publish_tf", default_value="",
                              description="TF frames face_<id>/gaze_<id> (true/false); empty: "
                                          "the params file's"),
        DeclareLaunchArgument("people", default_value="true",
                              description="Also start face3d_people (enrolled people, "
                                          "re-identification, the enroll_face action)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the face3d nodes and their outputs"),
        DeclareLaunchArgument("use_rviz", default_value="false",
                              description="Start RViz with rviz/face3d.rviz (if installed)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_setup, args=[share])])
