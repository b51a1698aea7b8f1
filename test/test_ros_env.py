"""The ROS 2 environment itself: real rclpy over Fast DDS, and the built face3d_msgs.

These fail (not skip) when rclpy or face3d_msgs are missing: scripts/setup.sh installs and
builds them, and every ROS test of the suite relies on what is checked here.
"""

import os
import time

import pytest


def _spin_until(executor, done, timeout_s: float) -> None:
    """Spin ``executor`` until ``done()`` is true or ``timeout_s`` seconds have passed."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)


def test_rmw_is_fast_dds_and_domain_is_isolated(rclpy_context, ros_domain_id):
    """The middleware is Fast DDS and this session runs on its own domain id."""
    from rclpy.utilities import get_rmw_implementation_identifier

    assert get_rmw_implementation_identifier() == "rmw_fastrtps_cpp"
    assert 1 <= ros_domain_id <= 101
    assert rclpy_context.get_domain_id() == ros_domain_id
    assert os.environ["ROS_DOMAIN_ID"] == str(ros_domain_id)


def test_string_pub_sub_between_two_nodes(rclpy_context):
    """A std_msgs/String published by one node arrives intact, in order, at another node."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    talker = rclpy.create_node("env_talker", context=rclpy_context)
    listener = rclpy.create_node("env_listener", context=rclpy_context)
    received = []
    listener.create_subscription(String, "env_check", lambda m: received.append(m.data), qos)
    pub = talker.create_publisher(String, "env_check", qos)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        # Wait for discovery: the publisher sees the subscription.
        _spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        assert pub.get_subscription_count() == 1, "the subscription was never discovered"
        sent = [f"face3d env check {i} pid {os.getpid()}" for i in range(5)]
        for text in sent:
            pub.publish(String(data=text))
        _spin_until(executor, lambda: len(received) >= len(sent), 10.0)
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    assert received == sent


def test_face3d_msgs_round_trip(rclpy_context):
    """face3d_msgs is built and importable, and a Face3DArray crosses DDS with its content."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    # A missing message build must fail here, not skip.
    import face3d_msgs.msg as msg_module

    array = msg_module.Face3DArray()
    array.header.frame_id = "camera_optical_frame"
    array.header.stamp.sec = 1234
    array.header.stamp.nanosec = 5678
    face = msg_module.Face3D()
    face.id = 7
    face.confidence = 0.875
    landmarks = np.linspace(-0.1, 0.6, 478 * 3, dtype=np.float32)  # (478*3,) metres
    face.landmarks_3d = landmarks
    array.faces = [face]

    node_a = rclpy.create_node("env_face_pub", context=rclpy_context)
    node_b = rclpy.create_node("env_face_sub", context=rclpy_context)
    got = []
    node_b.create_subscription(msg_module.Face3DArray, "env_faces", got.append, 10)
    pub = node_a.create_publisher(msg_module.Face3DArray, "env_faces", 10)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node_a)
    executor.add_node(node_b)
    try:
        _spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        pub.publish(array)
        _spin_until(executor, lambda: bool(got), 10.0)
    finally:
        executor.shutdown()
        node_a.destroy_node()
        node_b.destroy_node()
    assert len(got) == 1
    out = got[0]
    assert out.header.frame_id == "camera_optical_frame"
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1234, 5678)
    assert [f.id for f in out.faces] == [7]
    assert out.faces[0].confidence == pytest.approx(0.875)
    np.testing.assert_array_equal(np.asarray(out.faces[0].landmarks_3d), landmarks)
