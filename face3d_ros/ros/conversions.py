"""Pure conversions between ROS messages and the core's numpy types.

Nothing here spins, logs or holds state: every function takes messages or core results and
returns new objects, so all of it is tested with plain pytest by building messages by hand.

Numeric arrays are moved with ``numpy`` views and ``array.array`` built from raw bytes, never
with per-point Python loops: filling a :class:`face3d_msgs.msg.Face3D` costs microseconds.
"""

from __future__ import annotations

import array
from typing import Optional, Sequence, Tuple

import numpy as np
from face3d_msgs.msg import Face3D, Face3DArray, FaceMeshTopology, Gaze as GazeMsg
from geometry_msgs.msg import Pose, PoseArray
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from face3d_ros.core.types import (
    NUM_LANDMARKS,
    CameraIntrinsics,
    Expression,
    FaceResult,
    FrameResult,
    Gaze,
    GazeRay,
    HeadPose,
    Roi,
)
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


#: Field of view (degrees) a rectified pinhole image can plausibly span along either axis;
#: focal lengths outside it are rejected as a broken camera_info.
MIN_FOV_DEG = 0.5
MAX_FOV_DEG = 179.0


def camera_info_to_intrinsics(
    msg: Optional[CameraInfo], width: int, height: int, default_hfov_deg: float = 60.0
) -> Tuple[CameraIntrinsics, Optional[str]]:
    """Intrinsics of a ``width`` x ``height`` image from its ``camera_info``.

    Returns ``(intrinsics, problem)``. When ``msg`` is usable, ``problem`` is None and the
    intrinsics come from ``K`` (``assumed=False``). Otherwise ``problem`` says what is wrong
    and the intrinsics are those of an ideal camera with a horizontal field of view of
    ``default_hfov_deg`` (``assumed=True``). Checked: K all zero (uncalibrated camera), fx or fy
    not positive and finite, focal lengths that give a field of view outside
    [``MIN_FOV_DEG``, ``MAX_FOV_DEG``] (e.g. fx = 1e-9 or 1e12: a broken driver), the
    camera_info size differing from the image size, and the principal point outside the image.
    Distortion is not applied: the image is taken as rectified.
    """
    fallback = CameraIntrinsics.from_fov(width, height, default_hfov_deg)
    if msg is None:
        return fallback, "no camera_info received"
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    if k.size != 9:
        return fallback, f"camera_info K has {k.size} values, expected 9"
    if not np.any(k):
        return fallback, "camera_info K is all zero (the camera is not calibrated)"
    if not np.all(np.isfinite(k)):
        return fallback, "camera_info K contains NaN or infinite values"
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if fx <= 0.0 or fy <= 0.0:
        return fallback, f"camera_info K has non-positive focal lengths fx={fx:g}, fy={fy:g}"
    for axis, f, side in (("fx", fx, width), ("fy", fy, height)):
        fov = float(np.degrees(2.0 * np.arctan2(0.5 * side, f)))
        if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
            return fallback, (
                f"camera_info K has an implausible focal length {axis}={f:g} px: a "
                f"{side} px side would span {fov:.3g} deg, expected {MIN_FOV_DEG:g}-"
                f"{MAX_FOV_DEG:g} deg; publish the calibrated camera_info of this camera"
            )
    info_w, info_h = int(msg.width), int(msg.height)
    if (info_w, info_h) != (0, 0) and (info_w, info_h) != (int(width), int(height)):
        return fallback, (
            f"camera_info is for a {info_w}x{info_h} image but the image is {width}x{height}; "
            "publish the camera_info that matches the image (e.g. of the same resolution)"
        )
    if not (0.0 <= cx <= width and 0.0 <= cy <= height):
        return fallback, (
            f"camera_info principal point ({cx:g}, {cy:g}) lies outside the {width}x{height} "
            "image"
        )
    return CameraIntrinsics(fx, fy, cx, cy, int(width), int(height), assumed=False), None


def _f32(values: np.ndarray) -> array.array:
    """array.array('f') holding ``values`` flattened (one memcpy, no per-element checks)."""
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def _fill_gaze(msg: GazeMsg, ray: GazeRay) -> GazeMsg:
    o = np.asarray(ray.origin, dtype=np.float64)
    d = np.asarray(ray.direction, dtype=np.float64)
    msg.origin.x, msg.origin.y, msg.origin.z = float(o[0]), float(o[1]), float(o[2])
    msg.direction.x, msg.direction.y, msg.direction.z = float(d[0]), float(d[1]), float(d[2])
    msg.yaw = float(ray.yaw)
    msg.pitch = float(ray.pitch)
    msg.confidence = float(ray.confidence)
    return msg


def face_to_msg(face: FaceResult) -> Face3D:
    """One :class:`FaceResult` as a ``face3d_msgs/Face3D`` (layout in Face3D.msg)."""
    msg = Face3D()
    msg.id = int(face.track_id)
    msg.confidence = float(face.score)
    msg.presence = float(face.presence)
    box = np.asarray(face.box, dtype=np.float64)
    msg.x_min, msg.y_min, msg.x_max, msg.y_max = (float(v) for v in box[:4])
    pose = face.head_pose
    t = np.asarray(pose.translation, dtype=np.float64)
    q = np.asarray(pose.quaternion_xyzw, dtype=np.float64)
    p = msg.head_pose.pose
    p.position.x, p.position.y, p.position.z = float(t[0]), float(t[1]), float(t[2])
    p.orientation.x, p.orientation.y = float(q[0]), float(q[1])
    p.orientation.z, p.orientation.w = float(q[2]), float(q[3])
    msg.head_yaw = float(pose.yaw)
    msg.head_pitch = float(pose.pitch)
    msg.head_roll = float(pose.roll)
    msg.head_pose_confidence = float(pose.confidence)
    lm3 = np.asarray(face.landmarks_3d)
    lm2 = np.asarray(face.landmarks_2d)
    if lm3.shape != (NUM_LANDMARKS, 3) or lm2.shape != (NUM_LANDMARKS, 3):
        raise ValueError(
            f"landmarks must be ({NUM_LANDMARKS}, 3), got 3D {lm3.shape} and 2D {lm2.shape}"
        )
    msg.landmarks_3d = _f32(lm3)
    msg.landmarks_2d = _f32(lm2)
    _fill_gaze(msg.gaze_left, face.gaze.left)
    _fill_gaze(msg.gaze_right, face.gaze.right)
    _fill_gaze(msg.gaze_combined, face.gaze.combined)
    names = tuple(face.expression.names)
    values = np.asarray(face.expression.values, dtype=np.float32).reshape(-1)
    if len(names) != values.size:
        raise ValueError(f"{len(names)} expression names but {values.size} values")
    msg.expression_names = list(names)
    msg.expression_values = _f32(values)
    return msg


def _ray_from_msg(msg: GazeMsg) -> GazeRay:
    return GazeRay(
        origin=np.array([msg.origin.x, msg.origin.y, msg.origin.z]),
        direction=np.array([msg.direction.x, msg.direction.y, msg.direction.z]),
        yaw=float(msg.yaw), pitch=float(msg.pitch), confidence=float(msg.confidence))


def face_from_msg(msg: Face3D) -> FaceResult:
    """A :class:`FaceResult` from a ``face3d_msgs/Face3D`` (for clients of the topic).

    The message carries no crop, so ``roi`` is the axis-aligned square around the box.
    ``track_id`` is ``msg.id``, the track id.
    """
    from scipy.spatial.transform import Rotation

    p = msg.head_pose.pose
    q = [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
    box = np.array([msg.x_min, msg.y_min, msg.x_max, msg.y_max], dtype=np.float64)
    lm3 = np.frombuffer(msg.landmarks_3d, dtype=np.float32).reshape(-1, 3).copy()
    lm2 = np.frombuffer(msg.landmarks_2d, dtype=np.float32).reshape(-1, 3).copy()
    if lm3.shape[0] != NUM_LANDMARKS or lm2.shape[0] != NUM_LANDMARKS:
        raise ValueError(f"Face3D landmarks must hold {NUM_LANDMARKS} points, got "
                         f"{lm3.shape[0]} (3D) and {lm2.shape[0]} (2D)")
    pose = HeadPose(
        rotation=Rotation.from_quat(q).as_matrix(),
        translation=np.array([p.position.x, p.position.y, p.position.z]),
        yaw=float(msg.head_yaw), pitch=float(msg.head_pitch), roll=float(msg.head_roll),
        confidence=float(msg.head_pose_confidence))
    return FaceResult(
        track_id=int(msg.id), score=float(msg.confidence), presence=float(msg.presence),
        box=box, landmarks_2d=lm2, landmarks_3d=lm3, head_pose=pose,
        gaze=Gaze(left=_ray_from_msg(msg.gaze_left), right=_ray_from_msg(msg.gaze_right),
                  combined=_ray_from_msg(msg.gaze_combined)),
        expression=Expression(tuple(msg.expression_names),
                              np.asarray(msg.expression_values, dtype=np.float32)),
        roi=Roi(center=(float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0),
                size=float(max(box[2] - box[0], box[3] - box[1])), rotation=0.0))


def frame_to_msg(frame: FrameResult, header: Header) -> Face3DArray:
    """All faces of ``frame`` as a ``face3d_msgs/Face3DArray`` with the source ``header``."""
    msg = Face3DArray()
    msg.header = header
    width, height = frame.image_size
    msg.image_width, msg.image_height = int(width), int(height)
    intr = frame.intrinsics
    msg.fx, msg.fy, msg.cx, msg.cy = float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy)
    msg.intrinsics_assumed = bool(intr.assumed)
    msg.faces = [face_to_msg(f) for f in frame.faces]
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


def stamp_to_seconds(header: Header) -> float:
    """Header stamp as float seconds."""
    return float(header.stamp.sec) + 1e-9 * float(header.stamp.nanosec)
