"""launch_testing test of launch/face3d.launch.py (run by test/test_launch_testing.py, or by hand
with ``launch_test test/launch/launch_face3d.py``).

The launch file starts the perception node and the people node (autostart false), configures
and activates both; a real photo with its camera_info gives one Face3DArray with one face, and
the people node answers the same frame on ``people``; a
deactivated perception node stays inactive (the launch file activates only after configuring);
at the end the launch stops both nodes, which exit with status 0.
"""

import array
import os
import time
import unittest

import launch
import launch_testing
import launch_testing.actions
import launch_testing.asserts
import numpy as np
import rclpy
import rclpy.executors
from builtin_interfaces.msg import Time
from face3d_msgs.msg import Face3DArray, RecognisedPeople
from launch.launch_description_sources import PythonLaunchDescriptionSource
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

LAUNCH_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "launch",
                           "face3d.launch.py")
NS = "/lt"


def generate_test_description():
    """The launch file under test with a camera namespace and namespace of its own."""
    face3d = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.normpath(LAUNCH_FILE)),
        launch_arguments={"camera": "/lt_cam", "namespace": NS, "device": "cpu"}.items())
    return launch.LaunchDescription([face3d, launch_testing.actions.ReadyToTest()])


def astronaut():
    """skimage's astronaut, (512, 512, 3) uint8 RGB: one face."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut()[..., :3])


class TestFace3DLaunch(unittest.TestCase):
    """Talks to the launched node over DDS."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = rclpy.Context()
        rclpy.init(context=cls.ctx)
        cls.node = rclpy.create_node("face3d_launch_test", context=cls.ctx)
        cls.executor = rclpy.executors.SingleThreadedExecutor(context=cls.ctx)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        cls.ctx.try_shutdown()

    def spin_until(self, done, timeout_s):
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return bool(done())

    def call(self, client, request):
        self.assertTrue(client.wait_for_service(timeout_sec=60.0), client.srv_name)
        future = client.call_async(request)
        self.assertTrue(self.spin_until(future.done, 60.0), client.srv_name)
        return future.result()

    def state(self, node: str = "face3d"):
        client = self.node.create_client(GetState, f"{NS}/{node}/get_state")
        try:
            return self.call(client, GetState.Request()).current_state.label
        finally:
            self.node.destroy_client(client)

    def test_activate_one_face_deactivate_stays_inactive(self):
        self.assertTrue(self.spin_until(lambda: self.state() == "active", 120.0) or
                        self.state() == "active", "the launch file did not activate the node")
        self.assertTrue(self.spin_until(lambda: self.state("face3d_people") == "active", 60.0)
                        or self.state("face3d_people") == "active",
                        "the launch file did not activate the people node")
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = self.node.create_publisher(Image, "/lt_cam/image_raw", qos)
        info_pub = self.node.create_publisher(CameraInfo, "/lt_cam/camera_info", qos)
        faces, people = {}, {}
        self.node.create_subscription(
            Face3DArray, f"{NS}/faces",
            lambda m: faces.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m), qos)
        self.node.create_subscription(
            RecognisedPeople, f"{NS}/people",
            lambda m: people.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m), qos)
        rgb = astronaut()
        sec = 100
        answer = None
        deadline = time.monotonic() + 90.0
        while answer is None and time.monotonic() < deadline:
            sec += 1
            stamp = Time(sec=sec)
            img = Image(width=512, height=512, encoding="rgb8", step=3 * 512)
            img.header.stamp, img.header.frame_id = stamp, "lt_optical_frame"
            img.data = array.array("B", rgb.tobytes())
            info = CameraInfo(width=512, height=512,
                              k=[460.0, 0.0, 256.0, 0.0, 460.0, 256.0, 0.0, 0.0, 1.0])
            info.header = img.header
            info_pub.publish(info)
            image_pub.publish(img)
            if self.spin_until(lambda: (sec, 0) in faces, 5.0):
                answer = faces[(sec, 0)]
        self.assertIsNotNone(answer, "no Face3DArray from the launched node")
        self.assertEqual(len(answer.faces), 1)
        self.assertEqual(answer.header.frame_id, "lt_optical_frame")
        self.assertTrue(self.spin_until(lambda: (sec, 0) in people, 10.0),
                        "no RecognisedPeople for the frame from the people node")

        change = self.node.create_client(ChangeState, f"{NS}/face3d/change_state")
        req = ChangeState.Request()
        req.transition.id = Transition.TRANSITION_DEACTIVATE
        self.assertTrue(self.call(change, req).success)
        self.spin_until(lambda: False, 3.0)  # the launch file must not activate it again
        self.assertEqual(self.state(), "inactive")


@launch_testing.post_shutdown_test()
class TestFace3DExit(unittest.TestCase):
    """After the launch stops: every process exited cleanly."""

    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
