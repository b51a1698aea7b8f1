"""Typed configuration of the engine and the tracker: the one place for defaults in the core.

The ROS node reads its parameters (``config/face3d.yaml``, the single source of defaults for the
node) into these dataclasses; the CLIs build them from their flags.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, Optional, Tuple

#: Accepted range (inclusive) of each numeric engine and tracker setting: the one place of
#: these ranges (the node's parameter descriptors and checks take them from here).
LIMITS: Dict[str, Tuple[float, float]] = {
    # engine
    "threads": (0, 256),
    "min_detection_score": (0.0, 1.0),
    "nms_iou": (0.0, 1.0),
    "max_faces": (1, 256),
    "min_face_px": (0, 4096),
    "min_presence": (0.0, 1.0),
    "iris_diameter_m": (0.005, 0.02),
    "default_hfov_deg": (10.0, 170.0),
    # tracker
    "detect_every_n": (1, 1000),
    "max_missed": (0, 1000),
    "min_hits": (1, 100),
    "match_iou": (0.0, 1.0),
    "min_appearance": (0.0, 1.0),
    "min_cutoff_hz": (1e-3, 100.0),
    "beta": (0.0, 10.0),
    "d_cutoff_hz": (1e-3, 100.0),
}
#: Accepted values of each engine setting that is one of a few words.
CHOICES: Dict[str, Tuple[str, ...]] = {
    "detector": ("short", "full", "both"),
    "backend": ("auto", "torch", "litert"),
}


@dataclass(frozen=True)
class EngineConfig:
    """Settings of :class:`face3d_ros.core.pipeline.engine.FaceEngine`.

    device: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N".
    backend: inference backend of the networks: "auto" (torch on CUDA, Google's LiteRT on the
        CPU, torch with a warning when LiteRT is not installed), "torch" or "litert" (CPU only).
    threads: CPU threads of the networks; 0 is torch's default (the physical core count). The
        engine sets torch's process-wide thread count: to this with the torch backend, to 1
        with LiteRT (which gets this many threads per call; torch then runs small ops only).
    model_dir: folder with the verified model files; None uses the default cache
        (``$FACE3D_MODEL_DIR`` or ``~/.cache/face3d/models``).
    detector: "short" (faces within ~2 m, 128x128), "full" (up to ~5 m, 192x192) or "both".
    min_detection_score: detector score threshold in [0, 1].
    nms_iou: IoU above which detections are merged by weighted NMS.
    max_faces: at most this many faces per image (highest scores kept); more are counted in
        ``FrameResult.faces_dropped``, never dropped silently.
    min_face_px: the smallest face to find (detector box side, px of the original image):
        besides the whole image the detector scans overlapping tiles sized from it and the
        image size (``core.pipeline.detection.plan_tiles``); 0 scans the whole image only.
    min_presence: faces whose mesh face flag is below this are dropped, in [0, 1].
    iris_diameter_m: the human iris diameter used for metric scale (11.7 mm).
    default_hfov_deg: horizontal field of view assumed when no valid camera_info is given.
    refine_iris: run the iris network (needed for gaze and metric scale from the iris).
    mesh_flip: run the mesh network on each face crop and on its mirror image and average the
        two (the mirror's points renumbered left for right): the network's own left/right bias
        cancels, so a face and its mirror image read mirrored gaze and pose (one more mesh
        forward per face).
    """

    device: str = "auto"
    backend: str = "auto"
    threads: int = 0
    model_dir: Optional[str] = None
    detector: str = "both"
    min_detection_score: float = 0.5
    nms_iou: float = 0.3
    max_faces: int = 64
    min_face_px: int = 40
    min_presence: float = 0.5
    iris_diameter_m: float = 0.0117
    default_hfov_deg: float = 60.0
    refine_iris: bool = True
    mesh_flip: bool = True

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field and the accepted range."""
        check_fields(self)
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {dev!r}")


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`face3d_ros.core.pipeline.tracking.FaceTracker`.

    detect_every_n: run the detector at least every N frames even while all faces track (>= 1).
    max_missed: a track survives this many frames without a match before it is dropped.
    min_hits: a new track gets its id after this many consecutive matches (confirmation).
    match_iou: least box IoU for a detection to continue a track.
    min_appearance: least normalised cross-correlation between a track's aligned face
        thumbnails of consecutive frames; below it the face is taken for another person (a
        scene cut, someone stepping into the place) and gets a new track. 0 disables the check.
    smoothing: One-Euro filtering of landmarks, pose and gaze.
    min_cutoff_hz, beta, d_cutoff_hz: One-Euro parameters (Casiez et al. 2012).
    """

    detect_every_n: int = 10
    max_missed: int = 5
    min_hits: int = 2
    match_iou: float = 0.3
    min_appearance: float = 0.6
    smoothing: bool = True
    min_cutoff_hz: float = 1.0
    beta: float = 0.05
    d_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field and the accepted range."""
        check_fields(self)


def check_range(name: str, value: float, lo: float, hi: float) -> None:
    """Raise ValueError naming ``name`` and the accepted range unless lo <= value <= hi."""
    if not (lo <= value <= hi):
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")


def check_choice(name: str, value: str, choices: Tuple[str, ...]) -> None:
    """Raise ValueError naming ``name`` and the accepted words unless value is one of them."""
    if value not in choices:
        words = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {words}, got {value!r}")


def check_fields(config, limits: Optional[Dict[str, Tuple[float, float]]] = None,
                 choices: Optional[Dict[str, Tuple[str, ...]]] = None) -> None:
    """Check every field of a config dataclass that has an entry in ``limits`` or ``choices``
    (default :data:`LIMITS`, :data:`CHOICES`); ValueError naming the first bad one."""
    limits = LIMITS if limits is None else limits
    choices = CHOICES if choices is None else choices
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in limits:
            check_range(f.name, value, *limits[f.name])
        elif f.name in choices:
            check_choice(f.name, value, choices[f.name])
