"""Pure conversions between ROS messages and the core's numpy types.

Nothing here spins, logs or holds state: every function takes messages or core results and
returns new objects, so all of it is tested with plain pytest by building messages by hand.

Numeric arrays are moved with ``numpy`` views and ``array.array`` built from raw bytes, never
with per-point Python loops: filling a :class:`face3d_msgs.msg.Face3D` costs microseconds.
"""

from __future__ import annotations

import array
from typing import Any, Mapping, Sequence

import numpy as np
from face3d_msgs.msg import Face3D, Face3DArray, FaceMeshTopology
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from face3d_ros.core.io.face_fields import face_fields, face_from_message, frame_fields
from face3d_ros.core.types import FaceResult, FrameResult
from face3d_ros.ros.image_codec import (  # noqa: F401 - re-exported for the node and tests
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    compressed_msg_to_rgb,
    image_msg_to_rgb,
)


def rgb_to_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """Wrap an (H, W, 3) uint8 RGB array as an ``rgb8`` ``sensor_msgs/Image`` with ``header``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(width * 3)
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return msg


def _f32(values: np.ndarray) -> array.array:
    """array.array('f') holding ``values`` flattened (one memcpy, no per-element checks)."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def fill_message(msg, fields: Mapping[str, Any]):
    """Set nested field dicts (``core.io.face_fields``) on an rclpy message and return it.

    Nested dicts fill the nested messages in place; float32/float64 numpy arrays go in as
    ``array.array`` built from their bytes (one copy, no per-element checks); fields the dict
    leaves out keep their defaults.
    """
    for name, value in fields.items():
        if type(value) is dict:  # (not isinstance of typing.Mapping: ~10x slower per field)
            fill_message(getattr(msg, name), value)
        elif isinstance(value, np.ndarray):
            code = "f" if value.dtype == np.float32 else "d"
            setattr(msg, name, array.array(code, np.ascontiguousarray(value).tobytes()))
        else:
            setattr(msg, name, value)
    return msg


def face_to_msg(face: FaceResult) -> Face3D:
    """One :class:`FaceResult` as a ``face3d_msgs/Face3D`` (fields: ``core.io.face_fields``;
    layout in Face3D.msg)."""
    return fill_message(Face3D(), face_fields(face))


def face_from_msg(msg: Face3D) -> FaceResult:
    """A :class:`FaceResult` from a ``face3d_msgs/Face3D`` (for clients of the topic; the
    inverse of :func:`face_to_msg`, ``core.io.face_fields.face_from_message``).

    The message carries no crop, so ``roi`` is the axis-aligned square around the box.
    ``track_id`` is ``msg.id``, the track id.
    """
    return face_from_message(msg)


def frame_to_msg(frame: FrameResult, header: Header) -> Face3DArray:
    """All faces of ``frame`` as a ``face3d_msgs/Face3DArray`` with the source ``header``."""
    fields = frame_fields(frame)
    faces = fields.pop("faces")
    msg = fill_message(Face3DArray(), fields)
    msg.header = header
    msg.faces = [fill_message(Face3D(), f) for f in faces]
    return msg


def quaternion_x_to(direction: Sequence[float]) -> np.ndarray:
    """(4,) unit quaternion x, y, z, w of the shortest rotation taking +x onto ``direction``.

    ``direction`` need not be normalized; a zero vector gives the identity. The rotation about
    the ray itself is the one of the shortest arc (no roll information is implied).
    """
    d = np.asarray(direction, dtype=np.float64)
    n = np.linalg.norm(d)
    if not np.isfinite(n) or n == 0.0:
        return np.array([0.0, 0.0, 0.0, 1.0])
    d = d / n
    w = 1.0 + d[0]
    if w < 1e-9:  # direction is -x: half turn about z
        return np.array([0.0, 0.0, 1.0, 0.0])
    q = np.array([0.0, -d[2], d[1], w])  # cross(x, d), 1 + dot(x, d)
    return q / np.linalg.norm(q)


def gaze_pose_array(frame: FrameResult, header: Header) -> PoseArray:
    """Combined gaze of every face as a ``geometry_msgs/PoseArray`` (one pose per face).

    Pose i belongs to ``frame.faces[i]``: position = the combined gaze origin (metres, header
    frame), orientation = the rotation whose x axis is the gaze direction.
    """
    msg = PoseArray()
    msg.header = header
    poses = []
    for face in frame.faces:
        ray = face.gaze.combined
        o = np.asarray(ray.origin, dtype=np.float64)
        q = quaternion_x_to(ray.direction)
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = float(o[0]), float(o[1]), float(o[2])
        pose.orientation.x, pose.orientation.y = float(q[0]), float(q[1])
        pose.orientation.z, pose.orientation.w = float(q[2]), float(q[3])
        poses.append(pose)
    msg.poses = poses
    return msg


def topology_to_msg(triangles: np.ndarray, uv: np.ndarray) -> FaceMeshTopology:
    """The mesh topology message from (F, 3) triangle indices and (V, 2) UVs in [0, 1]."""
    tri = np.asarray(triangles)
    uv = np.asarray(uv)
    if tri.ndim != 2 or tri.shape[1] != 3 or uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"expected (F, 3) triangles and (V, 2) uv, got {tri.shape}, {uv.shape}")
    if tri.size and (tri.min() < 0 or tri.max() >= uv.shape[0]):
        raise ValueError(f"triangle indices must be in [0, {uv.shape[0]}), got "
                         f"[{tri.min()}, {tri.max()}]")
    msg = FaceMeshTopology()
    msg.num_vertices = int(uv.shape[0])
    msg.triangles = array.array("I", np.ascontiguousarray(tri, dtype=np.uint32).tobytes())
    msg.uv = _f32(uv)
    return msg
