"""face3d-eval's input side: the bag's topics, camera_info and truth, the frames as the node
would see them (its camera_info and input size policies), records and parameters.

Shared by the offline run (``tools.eval``) and the live run (``tools.eval_live``).
"""

from __future__ import annotations

import bisect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from face3d_ros.core.io import metrics as M
from face3d_ros.core.io.face_fields import face_from_message
from face3d_ros.ros.camera_info import (CAMERA_INFO_KEEP, CAMERA_INFO_WAIT_S,
                                        camera_info_to_intrinsics, select_camera_info)
from face3d_ros.tools import bagio

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE, EXIT_DAMAGED = 0, 1, 2, 3
RESULTS_TOPIC = "/face3d/faces"
MARKERS_TOPIC = "/face3d/face_markers"
#: Mean absolute pixel difference below which a frame counts as a repeat of the previous one.
STILL_DIFF = 0.5
#: Mean absolute pixel difference above which a frame starts a new scene.
CUT_DIFF = 25.0


class EvalError(RuntimeError):
    """A problem the user must fix; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FaceRecord:
    """One face of one frame, as far as the evaluation needs it (angles in degrees)."""

    sample: M.FaceSample
    score: float
    rotation: np.ndarray
    translation: np.ndarray
    gaze_direction: np.ndarray


@dataclass
class FrameRecord:
    """One source frame and what came out of it."""

    index: int
    log_ns: int
    stamp_ns: int
    width: int
    height: int
    still: bool = False
    cut: bool = False
    dropped: bool = False
    faces: List[FaceRecord] = field(default_factory=list)
    timings_ms: Dict[str, float] = field(default_factory=dict)
    faces_dropped: Optional[int] = None  # beyond max_faces (offline; None: not known, live)


# -- parameters -----------------------------------------------------------------------------


def load_params(path: Optional[str]) -> Dict[str, object]:
    """Parameter name -> value from a node params YAML (``/**: ros__parameters:``) or a flat
    mapping."""
    if not path:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"--params {path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict):
        raise EvalError(f"--params {path}: expected a mapping of parameter names to values")
    for value in doc.values():  # node-name level
        if isinstance(value, dict) and isinstance(value.get("ros__parameters"), dict):
            return dict(value["ros__parameters"])
    return dict(doc)


def configs(params: Dict[str, object], device: Optional[str], backend: Optional[str] = None):
    """The perception node's typed configs (``param_spec.Face3DConfig``: engine, tracker,
    node) from node parameters, checked by the node's own spec. Parameters of the people node
    are not used offline; names no node declares are an error."""
    from face3d_ros.ros.param_spec import PEOPLE_SPECS, SPECS, configs_from_values

    unknown = sorted(k for k in params if k not in SPECS and k not in PEOPLE_SPECS)
    if unknown:
        raise EvalError(f"--params: unknown parameter(s) {', '.join(unknown)} (see the "
                        "parameter tables in docs/ros.md)")
    values = {k: v for k, v in params.items() if k in SPECS}
    if device:
        values["device"] = device
    if backend:
        values["backend"] = backend
    try:
        return configs_from_values(values)
    except ValueError as exc:
        raise EvalError(f"--params: {exc}") from None


# -- reading the bag ------------------------------------------------------------------------


@dataclass
class BagInput:
    """What the evaluation takes from a bag besides the images."""

    image: bagio.TopicInfo
    info_topic: Optional[str]
    camera_infos: List[Tuple[int, object]]  # (log time ns, CameraInfo), log order
    truth_pose: Dict[int, Tuple[np.ndarray, np.ndarray]]
    truth_gaze: Dict[int, np.ndarray]


def _single(topics: Sequence[bagio.TopicInfo], msgtype: str, requested: Optional[str],
            what: str) -> Optional[str]:
    if requested:
        if not any(t.name == requested for t in topics):
            raise EvalError(f"{what} topic {requested} is not in the bag")
        return requested
    cands = [t.name for t in topics if t.msgtype == msgtype]
    if len(cands) > 1:
        raise EvalError(f"the bag has several {what} topics ({', '.join(cands)}); choose one")
    return cands[0] if cands else None


def scan_bag(reader: bagio.BagReader, args) -> BagInput:
    """Pick the topics and read camera_info and ground truth (first pass over the bag)."""
    try:
        image = bagio.pick_image_topic(reader.topics, args.topic)
    except bagio.BagError as exc:
        raise EvalError(str(exc)) from None
    info = _single(reader.topics, bagio.CAMERA_INFO_TYPE, args.camera_info, "CameraInfo")
    pose_t = _single(reader.topics, bagio.POSE_TYPE, args.truth_pose, "PoseStamped (truth)")
    gaze_t = _single(reader.topics, bagio.VECTOR_TYPE, args.truth_gaze,
                     "Vector3Stamped (truth)")
    inp = BagInput(image, info, [], {}, {})
    wanted = [t for t in (info, pose_t, gaze_t) if t]
    if wanted:
        for topic, msgtype, log_ns, raw in reader.messages(wanted):
            msg = bagio.deserialize(raw, msgtype)
            key = bagio.stamp_ns(msg)
            if topic == info:
                inp.camera_infos.append((log_ns, msg))
            elif topic == pose_t:
                inp.truth_pose[key] = bagio.pose_from_msg(msg)
            else:
                v = msg.vector
                inp.truth_gaze[key] = np.array([v.x, v.y, v.z])
    inp.camera_infos.sort(key=lambda item: item[0])  # log order (stable for equal times)
    return inp


@dataclass(frozen=True)
class NodeSettings:
    """The node parameters that decide what the node processes, besides the engine and the
    tracker: whether camera_info is used, the assumed field of view without one, and the input
    size policy."""

    use_camera_info: bool
    default_hfov_deg: float
    max_image_side: int


def node_settings(cfg) -> NodeSettings:
    """The :class:`NodeSettings` of the node's typed configs (:func:`configs`)."""
    return NodeSettings(cfg.node.use_camera_info, float(cfg.engine.default_hfov_deg),
                        int(cfg.node.max_image_side))


def _intrinsics_for(inp: BagInput, log_ns: int, stamp: int, width: int, height: int,
                    settings: NodeSettings):
    """The intrinsics the node would use for an image logged at ``log_ns`` with header
    ``stamp`` (ns): the node's camera_info policy (``ros.camera_info``) over the infos
    recorded up to the image (and those the node would still wait for); None when
    use_camera_info is false (the engine then assumes its field of view)."""
    if not settings.use_camera_info:
        return None
    # The infos recorded up to the horizon, the newest CAMERA_INFO_KEEP of them (the node's
    # buffer); the recording is in log order, so a bisection finds the end.
    end = bisect.bisect_right(inp.camera_infos, log_ns + int(CAMERA_INFO_WAIT_S * 1e9),
                              key=lambda item: item[0])
    received = [m for _, m in inp.camera_infos[max(0, end - CAMERA_INFO_KEEP):end]]
    info, _ = select_camera_info(received, (stamp // 10**9, stamp % 10**9), width, height)
    intr, _ = camera_info_to_intrinsics(info, width, height, settings.default_hfov_deg)
    return intr


class Progress:
    """Frames done, rate and time left on stderr, at most once a second."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self.t0 = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        """Report ``done`` frames."""
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 1.0):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        left = (self.total - done) / rate if rate > 0 and self.total else 0.0
        pct = f" ({100.0 * done / self.total:.0f}%)" if self.total else ""
        print(f"face3d-eval: {done}/{self.total or '?'} frames{pct}, {rate:.1f} frames/s, "
              f"~{left:.0f} s left", file=sys.stderr, flush=True)


def iter_images(reader: bagio.BagReader, inp: BagInput, settings: Optional[NodeSettings] = None):
    """(FrameRecord, rgb, header frame_id, intrinsics or None, message) of every decodable
    image; the intrinsics by the node's policy (None without ``settings``)."""
    prev = None
    index = 0
    for _, msgtype, log_ns, raw in reader.messages([inp.image.name]):
        msg = bagio.deserialize(raw, msgtype)
        try:
            rgb = bagio.image_to_rgb(msg, msgtype)
        except ValueError as exc:
            print(f"face3d-eval: frame {index} skipped: {exc}", file=sys.stderr)
            index += 1
            continue
        h, w = rgb.shape[:2]
        rec = FrameRecord(index, log_ns, bagio.stamp_ns(msg), w, h)
        small = rgb[::4, ::4].astype(np.int16)
        if prev is None or prev.shape != small.shape:
            rec.cut = prev is not None
        else:
            diff = float(np.abs(small - prev).mean())
            rec.still, rec.cut = diff < STILL_DIFF, diff > CUT_DIFF
        prev = small
        intr = (None if settings is None else
                _intrinsics_for(inp, log_ns, rec.stamp_ns, w, h, settings))
        yield rec, rgb, msg.header.frame_id, intr, msg
        index += 1


def _face_from_result(f) -> FaceRecord:
    p = f.head_pose
    s = M.FaceSample(int(f.track_id), np.asarray(f.box, float), p.yaw, p.pitch, p.roll,
                     f.gaze.combined.yaw, f.gaze.combined.pitch,
                     np.asarray(f.landmarks_2d)[:, :2].copy())
    return FaceRecord(s, float(f.score), np.asarray(p.rotation), np.asarray(p.translation),
                      np.asarray(f.gaze.combined.direction))


def _face_from_msg(f) -> FaceRecord:
    return _face_from_result(face_from_message(f))
