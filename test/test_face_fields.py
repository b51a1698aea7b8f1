"""One mapping of the Face3D fields (``core.io.face_fields``) and one camera_info policy
(``ros.camera_info``): the node's rclpy messages and the bag writer's rosbags messages carry
the same bytes, both read back to the same results, and the camera_info choice is the node's
for any message kind."""

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message  # noqa: E402
from sensor_msgs.msg import CameraInfo  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from face3d_ros.core.io.face_fields import (face_fields, frame_fields,  # noqa: E402
                                            frame_from_message)
from face3d_ros.ros.camera_info import select_camera_info  # noqa: E402
from face3d_ros.ros.conversions import face_from_msg, frame_to_msg  # noqa: E402
from face3d_ros.tools import bagio  # noqa: E402
from ros_frames import two_face_frame  # noqa: E402

STAMP_NS = 1_700_000_123_456_789_012 // 1000


def _header() -> Header:
    h = Header()
    h.stamp.sec, h.stamp.nanosec = STAMP_NS // 10**9, STAMP_NS % 10**9
    h.frame_id = "camera_optical"
    return h


def test_node_and_bag_messages_carry_the_same_bytes():
    frame = two_face_frame()
    node_bytes = serialize_message(frame_to_msg(frame, _header()))
    bag_msg = bagio.face_array_msg(frame, STAMP_NS, "camera_optical")
    # rclpy leaves the CDR alignment padding uninitialised: compare the node's bytes as
    # re-serialised by the bag writer's library (every value byte kept, padding zeroed).
    node_msg = bagio.deserialize(node_bytes, bagio.FACE_ARRAY_TYPE)
    assert len(node_bytes) == len(bagio.serialize(bag_msg, bagio.FACE_ARRAY_TYPE))
    assert (bagio.serialize(node_msg, bagio.FACE_ARRAY_TYPE)
            == bagio.serialize(bag_msg, bagio.FACE_ARRAY_TYPE))
    assert len(bag_msg.faces) == 2


def test_both_message_kinds_read_back_to_the_same_fields():
    frame = two_face_frame()
    rclpy_msg = frame_to_msg(frame, _header())
    bag_msg = bagio.deserialize(bagio.serialize(
        bagio.face_array_msg(frame, STAMP_NS, "camera_optical"), bagio.FACE_ARRAY_TYPE),
        bagio.FACE_ARRAY_TYPE)
    a, b = frame_from_message(rclpy_msg), frame_from_message(bag_msg)
    want = frame_fields(frame)
    for got in (a, b):
        fields = frame_fields(got)
        for fa, fw in zip(fields["faces"], want["faces"]):
            np.testing.assert_allclose(fa["landmarks_3d"], fw["landmarks_3d"])
            assert fa["id"] == fw["id"] and fa["expression_names"] == fw["expression_names"]
            q, qw = (np.array(list(f["head_pose"]["pose"]["orientation"].values()))
                     for f in (fa, fw))
            assert min(np.abs(q - qw).max(), np.abs(q + qw).max()) < 1e-6
        assert fields["image_width"] == want["image_width"]
    assert face_from_msg(rclpy_msg.faces[1]).track_id == frame.faces[1].track_id


def test_a_new_field_is_one_place():
    """Every field of the Face3D message is written by face_fields (nothing left at its
    default by one writer and filled by another)."""
    from face3d_msgs.msg import Face3D

    written = set(face_fields(two_face_frame().faces[0]))
    declared = set(Face3D.get_fields_and_field_types())
    assert declared - written == set(), "Face3D fields no writer fills"
    assert written - declared == set(), "fields face_fields writes that Face3D lacks"


def _info(sec: int, nanosec: int, width: int = 640, height: int = 480) -> CameraInfo:
    m = CameraInfo()
    m.header.stamp.sec, m.header.stamp.nanosec = sec, nanosec
    m.width, m.height = width, height
    return m


def test_camera_info_policy():
    a, b, c = _info(1, 0), _info(2, 0, 320, 240), _info(3, 0)
    infos = [a, b, c]
    assert select_camera_info(infos, (2, 0), 320, 240) == (b, True)  # same stamp wins
    assert select_camera_info(infos, (9, 0), 320, 240) == (b, False)  # newest of the size
    assert select_camera_info(infos, (9, 0), 640, 480) == (c, False)
    assert select_camera_info(infos, (9, 0), 100, 100) == (c, False)  # else the newest
    assert select_camera_info([], (1, 0), 640, 480) == (None, False)
    # rosbags messages go through the same rule (the offline evaluation)
    bag = [bagio.deserialize(bagio.serialize(m, bagio.CAMERA_INFO_TYPE),
                             bagio.CAMERA_INFO_TYPE)
           for m in (bagio.camera_info_msg(two_face_frame().intrinsics, s * 10**9, "cam")
                     for s in (1, 2))]
    assert select_camera_info(bag, (1, 0), 640, 480) == (bag[0], True)
