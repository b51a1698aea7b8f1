"""The one mapping between face3d's results and the fields of ``face3d_msgs/Face3D`` and
``Face3DArray``, without ROS.

Every place that writes or reads those messages goes through here: the node
(``ros.conversions``, rclpy messages), the bag writer (``tools.bagio``, rosbags messages, no
ROS install) and the evaluation and the people node (reading either kind). A new field is one
edit in :func:`face_fields` and :func:`face_from_message` (plus the ``.msg`` line and its test).

Fields are given as nested dicts with the message's own field names; nested messages
(``geometry_msgs/Point``, ``Pose``, ``face3d_msgs/Gaze``) are dicts too, numeric arrays are
float32 numpy arrays. Fields a dict leaves out keep the message's default (the header, the
pose covariance: unknown, all zero). Reading takes any object with the message's attribute
names (an rclpy message or a rosbags one): nothing here imports a message package.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..types import (NUM_LANDMARKS, CameraIntrinsics, Expression, FaceResult, FrameResult, Gaze,
                     GazeRay, HeadPose, Roi)

Fields = Dict[str, Any]


def _xyz(v: np.ndarray) -> Fields:
    v = np.asarray(v, dtype=np.float64)
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def _f32(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def gaze_fields(ray: GazeRay) -> Fields:
    """``face3d_msgs/Gaze`` fields of one ray: origin (m), unit direction, yaw and pitch (deg),
    confidence."""
    return {"origin": _xyz(ray.origin), "direction": _xyz(ray.direction),
            "yaw": float(ray.yaw), "pitch": float(ray.pitch),
            "confidence": float(ray.confidence)}


def face_fields(face: FaceResult) -> Fields:
    """``face3d_msgs/Face3D`` fields of one face (layout and units in Face3D.msg).

    Raises ValueError when the landmarks are not (478, 3) or the expression names and values
    differ in number.
    """
    pose = face.head_pose
    q = np.asarray(pose.quaternion_xyzw, dtype=np.float64)
    lm3, lm2 = np.asarray(face.landmarks_3d), np.asarray(face.landmarks_2d)
    if lm3.shape != (NUM_LANDMARKS, 3) or lm2.shape != (NUM_LANDMARKS, 3):
        raise ValueError(
            f"landmarks must be ({NUM_LANDMARKS}, 3), got 3D {lm3.shape} and 2D {lm2.shape}")
    names = tuple(face.expression.names)
    values = _f32(face.expression.values)
    if len(names) != values.size:
        raise ValueError(f"{len(names)} expression names but {values.size} values")
    box = np.asarray(face.box, dtype=np.float64)
    return {
        "id": int(face.track_id),
        "confidence": float(face.score),
        "presence": float(face.presence),
        "x_min": float(box[0]), "y_min": float(box[1]),
        "x_max": float(box[2]), "y_max": float(box[3]),
        "head_pose": {"pose": {
            "position": _xyz(pose.translation),
            "orientation": {"x": float(q[0]), "y": float(q[1]), "z": float(q[2]),
                            "w": float(q[3])}}},
        "head_yaw": float(pose.yaw),
        "head_pitch": float(pose.pitch),
        "head_roll": float(pose.roll),
        "head_pose_confidence": float(pose.confidence),
        "landmarks_3d": _f32(lm3),
        "landmarks_2d": _f32(lm2),
        "gaze_left": gaze_fields(face.gaze.left),
        "gaze_right": gaze_fields(face.gaze.right),
        "gaze_combined": gaze_fields(face.gaze.combined),
        "expression_names": list(names),
        "expression_values": values,
    }


def frame_fields(frame: FrameResult) -> Fields:
    """``face3d_msgs/Face3DArray`` fields of one image's results, less the header (the
    source image's, set by the caller)."""
    c = frame.intrinsics
    width, height = frame.image_size
    return {"image_width": int(width), "image_height": int(height),
            "fx": float(c.fx), "fy": float(c.fy), "cx": float(c.cx), "cy": float(c.cy),
            "intrinsics_assumed": bool(c.assumed),
            "faces": [face_fields(f) for f in frame.faces]}


def _vec(p) -> np.ndarray:
    return np.array([p.x, p.y, p.z], dtype=np.float64)


def _ray(msg) -> GazeRay:
    return GazeRay(origin=_vec(msg.origin), direction=_vec(msg.direction),
                   yaw=float(msg.yaw), pitch=float(msg.pitch),
                   confidence=float(msg.confidence))


def _points(values, what: str) -> np.ndarray:
    pts = np.asarray(values, dtype=np.float32).reshape(-1)
    if pts.size != NUM_LANDMARKS * 3:
        raise ValueError(f"Face3D {what} must hold {NUM_LANDMARKS} x 3 values, got {pts.size}")
    return pts.reshape(NUM_LANDMARKS, 3).copy()


def face_from_message(msg) -> FaceResult:
    """The :class:`FaceResult` of a ``face3d_msgs/Face3D`` (rclpy or rosbags), the inverse of
    :func:`face_fields`.

    The message carries no crop, so ``roi`` is the axis-aligned square around the box; the
    rotation comes from the quaternion. Raises ValueError on landmark arrays of the wrong size.
    """
    from scipy.spatial.transform import Rotation

    p = msg.head_pose.pose
    q = [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
    box = np.array([msg.x_min, msg.y_min, msg.x_max, msg.y_max], dtype=np.float64)
    pose = HeadPose(rotation=Rotation.from_quat(q).as_matrix(), translation=_vec(p.position),
                    yaw=float(msg.head_yaw), pitch=float(msg.head_pitch),
                    roll=float(msg.head_roll), confidence=float(msg.head_pose_confidence))
    return FaceResult(
        track_id=int(msg.id), score=float(msg.confidence), presence=float(msg.presence),
        box=box, landmarks_2d=_points(msg.landmarks_2d, "landmarks_2d"),
        landmarks_3d=_points(msg.landmarks_3d, "landmarks_3d"), head_pose=pose,
        gaze=Gaze(left=_ray(msg.gaze_left), right=_ray(msg.gaze_right),
                  combined=_ray(msg.gaze_combined)),
        expression=Expression(tuple(str(n) for n in msg.expression_names),
                              np.asarray(msg.expression_values, dtype=np.float32).copy()),
        roi=Roi(center=(float(box[0] + box[2]) / 2.0, float(box[1] + box[3]) / 2.0),
                size=float(max(box[2] - box[0], box[3] - box[1])), rotation=0.0))


def frame_from_message(msg, stamp: Optional[float] = None) -> FrameResult:
    """The :class:`FrameResult` of a ``face3d_msgs/Face3DArray`` (rclpy or rosbags): faces,
    image size and intrinsics; no timings."""
    width, height = int(msg.image_width), int(msg.image_height)
    intr = CameraIntrinsics(float(msg.fx), float(msg.fy), float(msg.cx), float(msg.cy), width,
                            height, assumed=bool(msg.intrinsics_assumed))
    return FrameResult(faces=tuple(face_from_message(f) for f in msg.faces),
                       image_size=(width, height), intrinsics=intr, stamp=stamp)
