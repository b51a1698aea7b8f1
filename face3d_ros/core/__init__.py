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

Modules by what they do:

- the pipeline: ``engine`` (batched detection, landmarks, geometry), ``detection``,
  ``landmarks``, ``geometry`` (metric 3D, head pose, gaze), ``expression``, ``tracking``,
  ``models`` / ``tflite_torch`` (the networks), ``canonical`` (the canonical face), ``topology``;
- identity and enrolment: ``identity`` (shape identity, re-identification), ``enrollment``
  (multi-view fusion, textures), ``export`` (OBJ and glTF);
- input and output: ``types``, ``config``, ``face_fields`` (the ``face3d_msgs`` field mapping),
  ``serialize`` (JSON), ``model_io`` (enrolled model files), ``model_store`` (network weights),
  ``imageio``, ``overlay``, ``metrics``.
"""

from .config import EngineConfig, TrackerConfig
from .engine import FaceEngine
from .tracking import FaceTracker
from .types import (CameraIntrinsics, Expression, FaceResult, FrameResult, Gaze, GazeRay,
                    HeadPose, Roi)

__all__ = [
    "CameraIntrinsics", "EngineConfig", "Expression", "FaceEngine", "FaceResult", "FaceTracker",
    "FrameResult", "Gaze", "GazeRay", "HeadPose", "Roi", "TrackerConfig",
]
