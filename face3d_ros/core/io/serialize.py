"""Plain-dict (JSON) form of results; the schema is documented in the README ("JSON output").

Lists of numbers, metres and pixels as in ``core.types``; angles in degrees.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..pipeline.geometry import FIVE_POINT_INDICES, IBUG68_INDICES
from ..types import CameraIntrinsics, FaceResult, FrameResult, GazeRay

SCHEMA_VERSION = 1


def _r(a: np.ndarray, nd: int = 5) -> list:
    return np.round(np.asarray(a, dtype=np.float64), nd).tolist()


def ray_to_dict(ray: GazeRay) -> Dict[str, Any]:
    """origin (m), direction (unit), yaw/pitch (deg), confidence."""
    return {"origin": _r(ray.origin), "direction": _r(ray.direction), "yaw": round(ray.yaw, 3),
            "pitch": round(ray.pitch, 3), "confidence": round(ray.confidence, 4)}


def face_to_dict(face: FaceResult, landmarks: bool = True) -> Dict[str, Any]:
    """One face; ``landmarks=False`` leaves out the 478-point arrays."""
    pose = face.head_pose
    d: Dict[str, Any] = {
        "id": face.track_id,
        "score": round(face.score, 4),
        "presence": round(face.presence, 4),
        "box": _r(face.box, 2),
        "head_pose": {"rotation": _r(pose.rotation, 6), "translation": _r(pose.translation),
                      "quaternion_xyzw": _r(pose.quaternion_xyzw, 6), "yaw": round(pose.yaw, 3),
                      "pitch": round(pose.pitch, 3), "roll": round(pose.roll, 3),
                      "confidence": round(pose.confidence, 4)},
        "gaze": {"left": ray_to_dict(face.gaze.left), "right": ray_to_dict(face.gaze.right),
                 "combined": ray_to_dict(face.gaze.combined)},
        "expression": {k: round(v, 4) for k, v in face.expression.as_dict().items()},
        "landmarks_5_2d": _r(face.landmarks_2d[list(FIVE_POINT_INDICES), :2], 2),
    }
    if landmarks:
        d["landmarks_2d"] = _r(face.landmarks_2d, 2)
        d["landmarks_3d"] = _r(face.landmarks_3d)
        d["landmarks_68_2d"] = _r(face.landmarks_2d[list(IBUG68_INDICES), :2], 2)
        d["landmarks_68_3d"] = _r(face.landmarks_3d[list(IBUG68_INDICES)])
        d["landmarks_5_3d"] = _r(face.landmarks_3d[list(FIVE_POINT_INDICES)])
    return d


def intrinsics_to_dict(c: CameraIntrinsics) -> Dict[str, Any]:
    """fx, fy, cx, cy (px), width, height, assumed."""
    return {"fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy, "width": c.width,
            "height": c.height, "assumed": c.assumed}


def frame_to_dict(frame: FrameResult, landmarks: bool = True) -> Dict[str, Any]:
    """One image's results."""
    return {"width": frame.image_size[0], "height": frame.image_size[1],
            "stamp": frame.stamp, "intrinsics": intrinsics_to_dict(frame.intrinsics),
            "timings_ms": {k: round(v, 3) for k, v in frame.timings_ms.items()},
            "faces": [face_to_dict(f, landmarks) for f in frame.faces]}
