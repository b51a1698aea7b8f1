"""Collecting the views of the EnrollFace action: a pure helper, no rclpy, tested without ROS.

The people node creates one :class:`EnrollmentCollector` per accepted goal and feeds it every
faces message paired with its image (:meth:`EnrollmentCollector.offer`); the returned
:class:`CollectorStatus` carries the guidance to log and send as feedback ("turn left", "turn
right", "hold still", ...). When :attr:`CollectorStatus.finished` is True the node calls
:meth:`EnrollmentCollector.finish`, which fuses the views (``core.people.enrollment``), lets the
caller give the model its final person id and name (``assign``: a re-enrolled person keeps theirs,
and their file), writes the model file and its OBJ / glTF exports once, and returns an
:class:`EnrollmentOutcome` whose fields map one to one onto the action result.

Bins by head yaw (degrees, ``core.types`` signs: > 0 turned to the subject's left):
front ``|yaw| < 12``, left ``yaw > 20``, right ``yaw < -20``. A view is taken once the head has
stayed in its bin for ``hold_frames`` frames with less than ``hold_deg`` of change; the best of a
bin is the one nearest its target yaw (0, +30, -30) with the highest pose confidence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from face3d_ros.core.people.enrollment import EnrollmentView, enroll, largest_face
from face3d_ros.core.people.model_io import FaceModel, export_glb, export_obj, save_model
from face3d_ros.core.types import FaceResult, FrameResult

BINS = ("front", "left", "right")
_TARGET_YAW = {"front": 0.0, "left": 30.0, "right": -30.0}
_GUIDE = {"front": "look at the camera", "left": "turn left", "right": "turn right"}

#: ``assign(model) -> (person id, name, path of the model file it replaces or "")``: called by
#: :meth:`EnrollmentCollector.finish` after fusing, before writing. A path given is written
#: over (the re-enrolled person's own file); "" writes ``<output_dir>/<name>.npz``.
Assign = Callable[[FaceModel], Tuple[int, str, str]]


@dataclass(frozen=True)
class CollectorConfig:
    """front_max_deg: |yaw| below this is the front view; side_min_deg: |yaw| above this is a
    side view; hold_frames / hold_deg: frames the head must stay within hold_deg of yaw change
    before a view is taken; min_confidence: least head-pose confidence of a usable view;
    texture_size: atlas side (texels); export_glb: also write a .glb (needs trimesh)."""

    front_max_deg: float = 12.0
    side_min_deg: float = 20.0
    hold_frames: int = 3
    hold_deg: float = 3.0
    min_confidence: float = 0.3
    texture_size: int = 512
    export_glb: bool = True

    def __post_init__(self) -> None:
        """Reject settings that cannot work."""
        if not 0.0 < self.front_max_deg < self.side_min_deg < 80.0:
            raise ValueError("need 0 < front_max_deg < side_min_deg < 80 (degrees)")
        if self.hold_frames < 1 or self.hold_deg <= 0.0:
            raise ValueError("hold_frames must be >= 1 and hold_deg > 0")


@dataclass(frozen=True)
class CollectorStatus:
    """State after one frame. guidance: text for the log and the debug image. covered: bins
    with a view. face_id: the tracked id being enrolled (-1 until locked). finished: call
    :meth:`EnrollmentCollector.finish` now. timed_out: finished because time ran out."""

    guidance: str
    covered: Tuple[str, ...]
    face_id: int
    finished: bool
    timed_out: bool = False
    yaw: Optional[float] = None


@dataclass(frozen=True)
class EnrollmentOutcome:
    """The action result: success, message, model_path (the .npz model file), obj_path,
    glb_path, view_names, view_coverage (fraction of the atlas each view saw), coverage (all
    views together), coverage_by_source (seen / mirrored / filled), person_id (the id written
    into the model; -1 on failure), replaced (the re-enrolled person's model file this one
    was written over, or ""), model (the written model; None on failure)."""

    success: bool
    message: str
    model_path: str = ""
    obj_path: str = ""
    glb_path: str = ""
    view_names: Tuple[str, ...] = ()
    view_coverage: Tuple[float, ...] = ()
    coverage: float = 0.0
    coverage_by_source: Dict[str, float] = field(default_factory=dict)
    person_id: int = -1
    replaced: str = ""
    model: Optional[FaceModel] = None


@dataclass
class _Candidate:
    image: np.ndarray
    face: FaceResult
    score: float


class EnrollmentCollector:
    """Collects front, left and right views of one tracked face as the person turns.

    face_id: the track id to enrol, or -1 for the largest face (then locked to its id).
    timeout_s: seconds (> 0) from the first frame offered. output_dir: where :meth:`finish`
    writes. name: the model's name (default ``face<ID>``).
    """

    def __init__(self, face_id: int, timeout_s: float, output_dir: str | Path,
                 name: str = "", config: CollectorConfig = CollectorConfig()) -> None:
        if timeout_s <= 0.0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.face_id = int(face_id)
        self.timeout_s = float(timeout_s)
        self.output_dir = Path(output_dir)
        self.name = name
        self.config = config
        self._start: Optional[float] = None
        self._best: Dict[str, _Candidate] = {}
        self._recent: List[Tuple[str, float]] = []
        self._last: Optional[CollectorStatus] = None

    @property
    def covered(self) -> Tuple[str, ...]:
        """Bins that have a view, in the order front, left, right."""
        return tuple(b for b in BINS if b in self._best)

    def bin_of(self, yaw: float) -> Optional[str]:
        """The bin of a head yaw (degrees), or None between bins."""
        c = self.config
        if abs(yaw) < c.front_max_deg:
            return "front"
        if yaw > c.side_min_deg:
            return "left"
        if yaw < -c.side_min_deg:
            return "right"
        return None

    def _guidance(self, current: Optional[str], holding: bool) -> str:
        missing = [b for b in BINS if b not in self._best]
        if holding and current in missing:
            return "hold still"
        if not missing:
            return "done"
        return _GUIDE[missing[0]] if missing[0] != "front" or current != "front" else \
            "hold still"

    def offer(self, frame: FrameResult, image_rgb: np.ndarray, stamp: float) -> CollectorStatus:
        """Consider one processed frame (its RGB image, stamp in seconds)."""
        if self._start is None:
            self._start = float(stamp)
        timed_out = float(stamp) - self._start >= self.timeout_s
        face = self._pick(frame)
        if face is None:
            status = CollectorStatus(
                "no face: look at the camera" if self.face_id < 0 else
                f"face {self.face_id} not in view: look at the camera", self.covered,
                self.face_id, timed_out, timed_out)
            self._last = status
            return status
        yaw = float(face.head_pose.yaw)
        current = self.bin_of(yaw)
        self._recent = (self._recent + [(current or "", yaw)])[-self.config.hold_frames:]
        stable = (current is not None and len(self._recent) == self.config.hold_frames
                  and all(b == current for b, _ in self._recent)
                  and np.ptp([y for _, y in self._recent]) < self.config.hold_deg)
        usable = face.head_pose.confidence >= self.config.min_confidence
        if stable and usable and current is not None:
            score = -abs(yaw - _TARGET_YAW[current]) + 10.0 * face.head_pose.confidence
            best = self._best.get(current)
            if best is None or score > best.score:
                self._best[current] = _Candidate(np.array(image_rgb[..., :3], copy=True), face,
                                                 score)
        holding = current is not None and not stable
        done = len(self.covered) == len(BINS)
        status = CollectorStatus(self._guidance(current, holding), self.covered, self.face_id,
                                 done or timed_out, timed_out and not done, yaw)
        self._last = status
        return status

    def _pick(self, frame: FrameResult) -> Optional[FaceResult]:
        if self.face_id >= 0:
            for f in frame.faces:
                if f.track_id == self.face_id:
                    return f
            return None
        face = largest_face(frame.faces)
        if face is not None and face.track_id >= 0:
            self.face_id = face.track_id  # lock onto this person
        return face

    def finish(self, assign: Optional[Assign] = None) -> EnrollmentOutcome:
        """Fuse the collected views, write ``<name>.npz`` (+ OBJ/MTL/PNG, + .glb) once and
        report.

        assign: gives the fused model its final person id and name before anything is written,
        and the file of the enrolled person it replaces (then written over, with its exports:
        no second file of one person); without it the model keeps the collector's ``name``
        and the track id. Without a front view
        nothing is written (success False, the message says what to do); with missing side
        views the model is built from what there is and the message names them.
        """
        if "front" not in self._best:
            return EnrollmentOutcome(False, "no front view: look straight at the camera and "
                                     "hold still, then send the EnrollFace goal again")
        views = [EnrollmentView(b, self._best[b].image, self._best[b].face) for b in self.covered]
        name = self.name or (f"face{self.face_id}" if self.face_id >= 0 else "face")
        result = enroll(views, name=name, face_id=self.face_id,
                        texture_size=self.config.texture_size)
        model, replaced = result.model, ""
        if assign is not None:
            pid, name, replaced = assign(model)
            model = dataclasses.replace(model, name=name, face_id=int(pid))
        target = Path(replaced) if replaced else self.output_dir / f"{name}.npz"
        model_path = save_model(target, model)
        obj = export_obj(model, model_path.parent, model_path.stem)
        glb = export_glb(model, model_path.with_suffix(".glb")) \
            if self.config.export_glb else None
        missing = [b for b in BINS if b not in self._best]
        msg = f"enrolled '{name}' from {', '.join(self.covered)}; texture seen " \
              f"{result.coverage['seen']:.0%}, mirrored {result.coverage['mirrored']:.0%}, " \
              f"filled {result.coverage['filled']:.0%}"
        if missing:
            msg += "; missing " + ", ".join(f"{b} view ({_GUIDE[b]})" for b in missing)
        if replaced:
            msg += f"; replaced their model {replaced}"
        return EnrollmentOutcome(
            True, msg, str(model_path), str(obj), str(glb) if glb else "",
            model.view_names, model.view_coverage,
            float(result.coverage["seen"]), dict(result.coverage), int(model.face_id),
            replaced, model)
