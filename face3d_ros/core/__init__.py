"""The perception engine: numpy + torch only, no ROS imports.

The public API, what the node, the tools and the docs use::

    from face3d_ros.core import EngineConfig, FaceEngine, FaceTracker, TrackerConfig

    engine = FaceEngine(EngineConfig(device="auto"))
    frame = engine.process(rgb)                 # one image, detection only
    tracker = FaceTracker(engine, TrackerConfig())
    frame = tracker.process(rgb, None, stamp)   # a video: track ids, smoothing

Results are frozen dataclasses (:class:`FrameResult` of :class:`FaceResult`; units and frames
in :mod:`face3d_ros.core.types`). :meth:`FaceEngine.stage` times a block into a frame's
``timings_ms``. Everything else in the package is an implementation module; its names may
change between releases.

Subpackages by what they do:

- ``pipeline``: the per-image work: ``engine`` (batched detection, landmarks, geometry),
  ``detection``, ``landmarks``, ``geometry`` (metric 3D, head pose, gaze), ``expression``,
  ``tracking``, ``models`` / ``tflite_torch`` (the networks), ``canonical`` (the canonical
  face and its data), ``topology``;
- ``people``: identity and enrolment: ``identity`` (shape identity, re-identification),
  ``enrollment`` (multi-view fusion, textures), ``export`` (OBJ and glTF), ``model_io``
  (enrolled model files);
- ``io``: results in and out: ``face_fields`` (the ``face3d_msgs`` field mapping),
  ``serialize`` (JSON), ``model_store`` (network weights), ``imageio``, ``overlay``,
  ``metrics``.

``types`` (result types, frames and units) and ``config`` (engine and tracker settings) are
shared by all three.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import EngineConfig, TrackerConfig
from .types import (CameraIntrinsics, Expression, FaceResult, FrameResult, Gaze, GazeRay,
                    HeadPose, Roi)

#: The engine and the tracker load torch: imported on first use, so that a program that only
#: reads results (the people node, the bag tools) does not pay for it.
_LAZY = {"FaceEngine": ".pipeline.engine", "FaceTracker": ".pipeline.tracking"}

if TYPE_CHECKING:
    from .pipeline.engine import FaceEngine
    from .pipeline.tracking import FaceTracker

__all__ = [
    "CameraIntrinsics", "EngineConfig", "Expression", "FaceEngine", "FaceResult", "FaceTracker",
    "FrameResult", "Gaze", "GazeRay", "HeadPose", "Roi", "TrackerConfig",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
