"""face3d-accuracy: head pose, gaze and expression measured against renders with exact truth.

A program that prints markdown tables, not a test (``test/test_accuracy.py`` asserts a small
fixed subset of the same figures). Two real head models are rendered with
``face3d_ros.tools.head_render`` at known head poses, eye rotations and ARKit blendshape
weights, and each render goes through the engine as the tracker sees a face
(``process_batch(..., refine_rois=1)``):

* ``lps``: the Lee Perry-Smith head scan (CC BY 3.0). Closed eyes: head pose only.
* ``facecap``: the facecap head by Face Cap / Niels Jansson. Head pose, gaze (anatomical
  eyeballs turned by known angles) and expression (52 ARKit blendshapes).

Two real photos add eye contact and a mirror test: skimage's astronaut and matplotlib's Grace
Hopper, both looking into the lens.

Tables (docs/accuracy.md explains each):

1. head pose per head: MAE per angle, geodesic error by yaw range, frontal offset, yaw->roll
   leak, detection range, confidence against error; pure-yaw readings;
2. gaze (facecap): angular error per eye and combined by head yaw and eye rotation, gain,
   mirror bias, confidence against error; eye contact and mirror test on the photos;
3. expression (facecap): coefficient against blendshape weight (Pearson r, monotone, change
   with head yaw, left/right swap), neutral face, closed eye; a tracked face against the
   person's own open eye, a blink frame by frame, and a tracked face against the person's own
   resting face (neutral, turned, and each blendshape's weight);
4. the 68-point subset (only when the renderer marks the iBUG-68 points: ``ibug68_truth``);
5. metric scale: translation z and outer eye-corner distance read against truth;
6. iris-centre pixel error against the projected truth;
7. lights and face sizes.

Usage::

    face3d-accuracy [--quick] [--heads DIR] [--device cpu|cuda|auto] [--json OUT]
                    [--out-md FILE]

``--quick`` measures a small subset (about half a minute on 2 CPU cores); the default full
sweep takes about 2-3 minutes there (about 580 renders at ~0.2 s each, face3d ~0.03 s each).
Renders are cached within a run.

One program (over 400 lines): the render plan, the reading and every table share one sample
cache and one set of truth conventions; its parts are not used apart.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from face3d_ros.core.pipeline.geometry import (IBUG68_INDICES, LEFT_EYE_OUTER, RIGHT_EYE_OUTER,
                                               direction_angles)
from face3d_ros.core.types import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

# --------------------------------------------------------------------------------------------
# Render settings (all tables)

WIDTH, HEIGHT = 640, 480
HFOV_DEG = 60.0
EYE_CORNER_PX = 95.0  # outer eye corners of a frontal face, px: a face box of ~220 px
FACE_PER_EYE_CORNERS = 2.3  # face box size / outer eye-corner distance (head_render docstring)
REFINE_ROIS = 1  # one landmark pass on the crop the last pass placed: as the tracker sees a face

#: Light setups: (directions towards the light in the camera frame with intensities, ambient).
LIGHT_SETUPS: Dict[str, Tuple[Tuple[Tuple[Tuple[float, float, float], float], ...], float]] = {
    "studio": ((((0.0, -0.35, -1.0), 0.55), ((-0.7, -0.3, -1.0), 0.15),
                ((0.7, -0.3, -1.0), 0.15)), 0.35),
    "side": ((((-0.9, -0.2, -0.45), 0.8),), 0.2),
    "dim top": ((((0.0, -1.0, -0.6), 0.45),), 0.15),
}
DEFAULT_LIGHT = "studio"

#: Face box sizes (px) of the detection-size table; eye corners = size / FACE_PER_EYE_CORNERS.
FACE_SIZES_PX = (60, 80, 100, 150, 200, 250, 300)

HEADS = ("lps", "facecap")
HEAD_CREDITS = {
    "lps": "Lee Perry-Smith head scan (CC BY 3.0)",
    "facecap": "facecap head by Face Cap / Niels Jansson",
}
PHOTO_CREDITS = "real photos: skimage astronaut, matplotlib grace_hopper.jpg"

#: Blendshape -> (face3d coefficient, the other side's coefficient or None). ARKit ``_L`` is the
#: subject's left, as face3d's ``*_left``.
EXPRESSIONS: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ("jawOpen", "jaw_open", None),
    ("eyeBlink_L", "eye_blink_left", "eye_blink_right"),
    ("eyeBlink_R", "eye_blink_right", "eye_blink_left"),
    ("mouthSmile_L", "mouth_smile_left", "mouth_smile_right"),
    ("mouthSmile_R", "mouth_smile_right", "mouth_smile_left"),
    ("browInnerUp", "brow_up", None),
    ("mouthPucker", "mouth_pucker", None),
    ("mouthFunnel", "mouth_funnel", None),
    ("cheekSquint_L", "cheek_squint_left", "cheek_squint_right"),
    ("cheekSquint_R", "cheek_squint_right", "cheek_squint_left"),
    ("eyeWide_L", "eye_wide_left", "eye_wide_right"),
    ("eyeWide_R", "eye_wide_right", "eye_wide_left"),
    ("browDown_L", "brow_down_left", "brow_down_right"),
    ("browDown_R", "brow_down_right", "brow_down_left"),
)
MONOTONE_TOL = 0.02  # a coefficient may dip this much between weight steps and stay monotone
MONOTONE_MIN_RISE = 0.1  # ... and must rise at least this much from weight 0 to 1

#: Issue 9's ranges: the pose MAE target holds over |yaw| <= 60, |pitch| <= 30, |roll| <= 45.
TARGET_POSE_RANGE = (60.0, 30.0, 45.0)
YAW_BINS = ((0.0, 30.0, "|yaw| <= 30"), (30.0, 60.0, "30 < |yaw| <= 60"),
            (60.0, 75.0, "60 < |yaw| <= 75"), (75.0, 180.0, "|yaw| > 75"))
LEAK_MAX_YAW = 70.0  # yaw->roll leak: max |roll| over pure-yaw renders up to this |yaw|
YAW_WITHIN_DEG = 5.0  # "yaw read within 5 deg up to ..."


def _pose_set(yaws: Sequence[float], pitches: Sequence[float], rolls: Sequence[float],
              combos: Sequence[Tuple[float, float, float]]) -> Tuple[Tuple[float, ...], ...]:
    """Pure yaw, pure pitch, pure roll, then the combinations; no duplicates, in order."""
    out: List[Tuple[float, ...]] = []
    for pose in ([(float(y), 0.0, 0.0) for y in yaws] + [(0.0, float(p), 0.0) for p in pitches]
                 + [(0.0, 0.0, float(r)) for r in rolls]
                 + [tuple(float(v) for v in c) for c in combos]):
        if pose not in out:
            out.append(pose)
    return tuple(out)


def _grid(a: Sequence[float], b: Sequence[float]) -> Tuple[Tuple[float, float], ...]:
    return tuple((float(x), float(y)) for x in a for y in b)


@dataclass(frozen=True)
class Plan:
    """What one run renders.

    poses: (yaw, pitch, roll) deg per head. gaze_head_yaws x gaze_eyes: (eye yaw, eye pitch)
    deg of the facecap gaze grid. mirror_head_yaws x mirror_eye_yaws: renders whose mirror image
    is measured too. expressions: blendshape names (of :data:`EXPRESSIONS`); weights at head
    yaw 0; yaw_weights at each of expression_head_yaws. light_poses: (head yaw, eye yaw, eye
    pitch) rendered under every light setup. sizes: face box px, at size_head_yaws.
    """

    poses: Tuple[Tuple[float, ...], ...]
    gaze_head_yaws: Tuple[float, ...]
    gaze_eyes: Tuple[Tuple[float, float], ...]
    mirror_head_yaws: Tuple[float, ...]
    mirror_eye_yaws: Tuple[float, ...]
    expressions: Tuple[str, ...]
    weights: Tuple[float, ...]
    yaw_weights: Tuple[float, ...]
    expression_head_yaws: Tuple[float, ...]
    light_poses: Tuple[Tuple[float, float, float], ...]
    sizes: Tuple[float, ...]
    size_head_yaws: Tuple[float, ...]


FULL = Plan(
    poses=_pose_set(
        list(range(-90, 91, 15)) + [-85, -80, -70, 70, 80, 85], range(-50, 51, 10),
        range(-60, 61, 15),
        [(y, p, 0) for y in (-60, -30, 30, 60) for p in (-30, 30)]
        + [(y, 0, r) for y in (-60, -30, 30, 60) for r in (-45, 45)]
        + [(0, p, r) for p in (-30, 30) for r in (-45, 45)]
        + [(y, p, r) for y in (-45, 45) for p in (-20, 20) for r in (-30, 30)]),
    gaze_head_yaws=(0.0, -30.0, 30.0, -45.0, 45.0),
    gaze_eyes=_grid((-25, -15, 0, 15, 25), (-20, -10, 0, 10, 20)),
    mirror_head_yaws=(0.0, 30.0),
    mirror_eye_yaws=(-20.0, -10.0, 0.0, 10.0, 20.0),
    expressions=tuple(e[0] for e in EXPRESSIONS),
    weights=(0.0, 0.25, 0.5, 0.75, 1.0),
    yaw_weights=(0.5, 1.0),
    expression_head_yaws=(-30.0, 30.0),
    light_poses=((0.0, 0.0, 0.0), (-30.0, 15.0, 10.0), (30.0, -15.0, -10.0)),
    sizes=tuple(float(s) for s in FACE_SIZES_PX),
    size_head_yaws=(0.0, 30.0),
)

QUICK = Plan(
    poses=_pose_set((-75, -60, -30, 0, 30, 60, 75, 85), (-30, 30), (-45, 45),
                    [(30, 20, 0), (-30, 0, 30)]),
    gaze_head_yaws=(0.0, -30.0, 30.0),
    gaze_eyes=_grid((-20, 0, 20), (-15, 0, 15)),
    mirror_head_yaws=(0.0,),
    mirror_eye_yaws=(-20.0, 0.0, 20.0),
    expressions=("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "browInnerUp"),
    weights=(0.0, 0.5, 1.0),
    yaw_weights=(1.0,),
    expression_head_yaws=(30.0,),
    light_poses=((0.0, 0.0, 0.0),),
    sizes=(80.0, 150.0, 300.0),
    size_head_yaws=(0.0,),
)


# --------------------------------------------------------------------------------------------
# One render and its reading


@dataclass(frozen=True)
class Spec:
    """One render: head, head pose deg, eye rotation deg (relative to the head), blendshape
    weights as sorted (name, weight) pairs, outer eye-corner distance px of the frontal face,
    light setup name, and whether the image is mirrored (flipped left-right) before reading."""

    head: str
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    eye_yaw: float = 0.0
    eye_pitch: float = 0.0
    blend: Tuple[Tuple[str, float], ...] = ()
    eye_px: float = EYE_CORNER_PX
    light: str = DEFAULT_LIGHT
    flip: bool = False

    def mirrored(self) -> "Spec":
        """The same render, read from its mirror image."""
        return Spec(self.head, self.yaw, self.pitch, self.roll, self.eye_yaw, self.eye_pitch,
                    self.blend, self.eye_px, self.light, True)


@dataclass(frozen=True)
class TruthSummary:
    """The truth a table needs, camera optical frame, metres, px (of the image as read).

    rotation: (3, 3) camera_R_face; translation: (3,) between the eyeball centres; yaw, pitch,
    roll deg. axes, centres: (2, 3) optical axes and eyeball centres (subject's right, left;
    NaN without eyes). iris_px: (2, 2). pupil_visibility: (2,). corner_distance: outer
    eye-corner distance m; corner_mid: (3,) their midpoint; corner_px: their distance in px.
    ibug68_px: (68, 2) the iBUG-68 marks projected, or None.
    """

    rotation: np.ndarray
    translation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    axes: np.ndarray
    centres: np.ndarray
    iris_px: np.ndarray
    pupil_visibility: np.ndarray
    corner_distance: float
    corner_mid: np.ndarray
    corner_px: float
    ibug68_px: Optional[np.ndarray] = None

    def combined(self) -> Tuple[np.ndarray, np.ndarray]:
        """(direction, origin) of the combined gaze: the normalised mean of the two optical
        axes from the mean of the eyeball centres."""
        d = self.axes.mean(axis=0)
        return d / np.linalg.norm(d), self.centres.mean(axis=0)

    def mirrored(self, width: int) -> "TruthSummary":
        """The truth of the left-right mirror image (principal point at the image centre)."""
        m = np.diag([-1.0, 1.0, 1.0])
        return TruthSummary(
            rotation=m @ self.rotation @ np.diag([1.0, -1.0, 1.0]),
            translation=m @ self.translation, yaw=-self.yaw, pitch=self.pitch, roll=-self.roll,
            axes=(self.axes @ m)[::-1], centres=(self.centres @ m)[::-1],
            iris_px=np.stack((width - self.iris_px[::-1, 0], self.iris_px[::-1, 1]), axis=-1),
            pupil_visibility=self.pupil_visibility[::-1],
            corner_distance=self.corner_distance, corner_mid=m @ self.corner_mid,
            corner_px=self.corner_px, ibug68_px=None)


@dataclass(frozen=True)
class Reading:
    """What face3d read from one image (see ``core.types.FaceResult``).

    rotation (3, 3), translation (3,) m, yaw/pitch/roll deg, pose_confidence. gaze_direction,
    gaze_origin: (3, 3) rows subject's right, left, combined; gaze_angles (3, 2) yaw, pitch deg;
    gaze_confidence (3,). expression: name -> value. iris_px: (2, 2) landmarks 468 and 473.
    corner_distance m and corner_mid (3,) of landmarks 33 and 263. ibug68_px: (68, 2).
    """

    rotation: np.ndarray
    translation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    pose_confidence: float
    gaze_direction: np.ndarray
    gaze_origin: np.ndarray
    gaze_angles: np.ndarray
    gaze_confidence: np.ndarray
    expression: Dict[str, float]
    iris_px: np.ndarray
    corner_distance: float
    corner_mid: np.ndarray
    ibug68_px: np.ndarray


@dataclass(frozen=True)
class Sample:
    """One render (or photo) with its truth (None for a photo) and reading (None: no face)."""

    spec: Spec
    truth: Optional[TruthSummary]
    reading: Optional[Reading]

    @property
    def found(self) -> bool:
        """True when face3d found the face."""
        return self.reading is not None

    def to_dict(self) -> dict:
        """JSON-ready row: the spec, the truth and the reading (None when not found)."""
        def plain(obj):
            if obj is None:
                return None
            out = {}
            for key, value in obj.__dict__.items():
                if isinstance(value, np.ndarray):
                    value = np.round(value.astype(np.float64), 6).tolist()
                elif isinstance(value, dict):
                    value = {k: round(float(v), 4) for k, v in value.items()}
                elif isinstance(value, float):
                    value = round(value, 6)
                out[key] = value
            return out

        spec = dict(self.spec.__dict__)
        spec["blend"] = dict(self.spec.blend)
        row = {"spec": spec, "found": self.found, "truth": plain(self.truth),
               "reading": plain(self.reading)}
        return json.loads(json.dumps(row).replace("NaN", "null"))


def reading_from_face(face) -> Reading:
    """The :class:`Reading` of one ``core.types.FaceResult``."""
    hp, g = face.head_pose, face.gaze
    rays = (g.right, g.left, g.combined)
    lm2, lm3 = face.landmarks_2d, face.landmarks_3d
    return Reading(
        rotation=np.asarray(hp.rotation, dtype=np.float64),
        translation=np.asarray(hp.translation, dtype=np.float64),
        yaw=float(hp.yaw), pitch=float(hp.pitch), roll=float(hp.roll),
        pose_confidence=float(hp.confidence),
        gaze_direction=np.array([r.direction for r in rays], dtype=np.float64),
        gaze_origin=np.array([r.origin for r in rays], dtype=np.float64),
        gaze_angles=np.array([[r.yaw, r.pitch] for r in rays], dtype=np.float64),
        gaze_confidence=np.array([r.confidence for r in rays], dtype=np.float64),
        expression={n: float(v) for n, v in zip(face.expression.names, face.expression.values)},
        iris_px=np.array(lm2[[RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER], :2], dtype=np.float64),
        corner_distance=float(np.linalg.norm(lm3[LEFT_EYE_OUTER] - lm3[RIGHT_EYE_OUTER])),
        corner_mid=0.5 * np.asarray(lm3[LEFT_EYE_OUTER] + lm3[RIGHT_EYE_OUTER], np.float64),
        ibug68_px=np.array(lm2[list(IBUG68_INDICES), :2], dtype=np.float64))


def _ibug68_px(head_render, truth) -> Optional[np.ndarray]:
    """(68, 2) px of the iBUG-68 marks of a render when the renderer has them for its head
    (``head_render.ibug68_truth``: facecap only), else None."""
    fn = getattr(head_render, "ibug68_truth", None)
    if fn is None or truth.head != "facecap":
        return None
    px = np.asarray(fn(truth), dtype=np.float64)
    if px.shape != (68, 2):
        raise ValueError(f"ibug68_truth returned shape {px.shape}; expected (68, 2) px")
    return px


def truth_summary(truth, ibug68_px: Optional[np.ndarray] = None) -> TruthSummary:
    """The :class:`TruthSummary` of a ``head_render.Truth`` (``ibug68_px``: (68, 2) marks)."""
    right, left = truth.outer_eye_corners
    v, px = truth.vertices, truth.vertices_px
    return TruthSummary(
        rotation=np.asarray(truth.camera_R_face, dtype=np.float64),
        translation=np.asarray(truth.translation, dtype=np.float64),
        yaw=float(truth.yaw), pitch=float(truth.pitch), roll=float(truth.roll),
        axes=np.asarray(truth.optical_axes, dtype=np.float64),
        centres=np.asarray(truth.eyeball_centres, dtype=np.float64),
        iris_px=np.asarray(truth.iris_centres_px, dtype=np.float64),
        pupil_visibility=np.asarray(truth.pupil_visibility, dtype=np.float64),
        corner_distance=float(np.linalg.norm(v[left] - v[right])),
        corner_mid=0.5 * (v[left] + v[right]),
        corner_px=float(np.linalg.norm(px[left] - px[right])),
        ibug68_px=ibug68_px)


class Accuracy:
    """Renders specs, reads them with the engine and caches the samples.

    heads: the head models folder (None: ``head_render.heads_dir()``; a missing folder raises
    FileNotFoundError at the first render, so photos work without it); device: the engine's.
    """

    def __init__(self, heads: Optional[str] = None, device: str = "cpu",
                 log: Optional[Callable[[str], None]] = None):
        from face3d_ros.core.config import EngineConfig
        from face3d_ros.core.pipeline.engine import FaceEngine
        from face3d_ros.tools import head_render

        self.hr = head_render
        self.heads = heads  # resolved (and checked) at the first render
        self.engine = FaceEngine(EngineConfig(device=device))
        self.device = str(self.engine.device) if hasattr(self.engine, "device") else device
        self.camera = head_render.camera_from_fov(WIDTH, HEIGHT, HFOV_DEG)
        self.cache: Dict[Spec, Sample] = {}
        self.photos: Dict[str, Tuple[Sample, Sample]] = {}
        self.renders = 0
        self.render_s = 0.0
        self.read_s = 0.0
        self._log = log

    def _read(self, image: np.ndarray, intrinsics, near_px: Optional[np.ndarray]):
        """The face nearest ``near_px`` (or the highest-scoring one), or None."""
        t0 = time.perf_counter()
        faces = self.engine.process_batch([image], [intrinsics], refine_rois=REFINE_ROIS)[0].faces
        self.read_s += time.perf_counter() - t0
        if not faces:
            return None
        if near_px is None:
            return max(faces, key=lambda f: f.score)
        return min(faces, key=lambda f: float(np.hypot(
            0.5 * (f.box[0] + f.box[2]) - near_px[0], 0.5 * (f.box[1] + f.box[3]) - near_px[1])))

    def sample(self, spec: Spec) -> Sample:
        """The sample of ``spec`` (rendered and read once per run)."""
        if spec not in self.cache:
            self._measure(spec)
        return self.cache[spec]

    def render(self, spec: Spec) -> tuple:
        """(image (H, W, 3) uint8 RGB, ``head_render.Truth``, translation (3,) m) of ``spec``
        (not mirrored)."""
        hr = self.hr
        model = hr.load_head(spec.head, self.heads)
        t = np.array([0.0, 0.0, hr.distance_for_eye_corners(model, spec.eye_px, self.camera.fx)])
        rot = hr.camera_R_face_from_euler(spec.yaw, spec.pitch, spec.roll, t)
        lights, ambient = LIGHT_SETUPS[spec.light]
        t0 = time.perf_counter()
        image, truth = hr.render(model, self.camera, rot, t, blendshapes=dict(spec.blend) or None,
                                 eye_yaw=spec.eye_yaw, eye_pitch=spec.eye_pitch,
                                 lights=lights, ambient=ambient)
        self.render_s += time.perf_counter() - t0
        self.renders += 1
        return image, truth, t

    def tracked(self, specs: Sequence[Spec], warmup: Union[Spec, Sequence[Spec]], frames: int,
                smoothing: bool = False) -> List[Optional[Reading]]:
        """Readings of ``specs`` as frames of one 30 Hz stream (``FaceTracker``; by default no
        smoothing: the frames are stills) after ``frames`` frames of ``warmup`` (one spec, or
        a sequence cycled through: a head moving a little): what the node reads of a person it
        has tracked for a while. None where the face was not found. Each distinct spec is
        rendered once."""
        from face3d_ros.core.config import TrackerConfig
        from face3d_ros.core.pipeline.tracking import FaceTracker

        tracker = FaceTracker(self.engine, TrackerConfig(smoothing=smoothing))
        rendered: Dict[Spec, tuple] = {}

        def image_of(spec: Spec) -> tuple:
            if spec not in rendered:
                rendered[spec] = self.render(spec)[:2]
            return rendered[spec]

        sway = [warmup] if isinstance(warmup, Spec) else list(warmup)
        stamp = 0.0
        for k in range(frames):
            image, truth = image_of(sway[k % len(sway)])
            tracker.process(image, truth.intrinsics, stamp)
            stamp += 1.0 / 30.0
        out: List[Optional[Reading]] = []
        for spec in specs:
            image, truth = image_of(spec)
            t0 = time.perf_counter()
            faces = tracker.process(image, truth.intrinsics, stamp).faces
            self.read_s += time.perf_counter() - t0
            stamp += 1.0 / 30.0
            out.append(reading_from_face(faces[0]) if faces else None)
        return out

    def _measure(self, spec: Spec) -> None:
        """Render ``spec`` and read the image and its mirror image (both cached)."""
        hr = self.hr
        image, truth, t = self.render(spec)
        ts = truth_summary(truth, _ibug68_px(hr, truth))
        centre = np.array([truth.cx + truth.fx * t[0] / t[2], truth.cy + truth.fy * t[1] / t[2]])
        plain = Spec(**{**spec.__dict__, "flip": False})
        face = self._read(image, truth.intrinsics, centre)
        self.cache[plain] = Sample(plain, ts, None if face is None else reading_from_face(face))
        if spec.flip:
            flipped = np.ascontiguousarray(image[:, ::-1])
            face = self._read(flipped, truth.intrinsics, np.array([WIDTH - centre[0], centre[1]]))
            self.cache[spec] = Sample(spec, ts.mirrored(WIDTH),
                                      None if face is None else reading_from_face(face))
        if self._log is not None and self.renders % 25 == 0:
            self._log(f"{self.renders} renders ({self.render_s:.0f} s render, "
                      f"{self.read_s:.0f} s face3d)")

    def photo(self, name: str) -> Tuple[Sample, Sample]:
        """(photo, its mirror image) samples of ``name`` ("astronaut" or "grace_hopper"),
        read with the engine's default intrinsics; truth None."""
        if name not in self.photos:
            image = load_photo(name)
            spec = Spec(head=name)
            out = []
            for flip in (False, True):
                img = np.ascontiguousarray(image[:, ::-1]) if flip else image
                face = self._read(img, None, None)
                out.append(Sample(Spec(head=name, flip=flip) if flip else spec, None,
                                  None if face is None else reading_from_face(face)))
            self.photos[name] = (out[0], out[1])
        return self.photos[name]


def load_photo(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB: "astronaut" (skimage) or "grace_hopper" (matplotlib sample)."""
    if name == "astronaut":
        import skimage.data

        image = skimage.data.astronaut()
    elif name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            image = matplotlib.image.imread(f, format="jpeg")
    else:
        raise ValueError(f"unknown photo {name!r}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


# --------------------------------------------------------------------------------------------
# Figures


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (deg) between two directions."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def geodesic_deg(ra: np.ndarray, rb: np.ndarray) -> float:
    """Rotation angle (deg) between two rotation matrices."""
    c = (np.trace(np.asarray(ra).T @ np.asarray(rb)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def _wrap(deg: float) -> float:
    return float((deg + 180.0) % 360.0 - 180.0)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r; NaN when fewer than 3 points or either side is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.std(x) < 1e-9 or np.std(y) < 1e-9:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of y against x; NaN when x is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.std(x) < 1e-9:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _max(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.max(values)) if values else float("nan")


def pose_errors(s: Sample) -> Dict[str, float]:
    """Signed yaw, pitch, roll errors (read - truth) and the geodesic error, deg."""
    t, r = s.truth, s.reading
    assert t is not None and r is not None
    return {"yaw": _wrap(r.yaw - t.yaw), "pitch": _wrap(r.pitch - t.pitch),
            "roll": _wrap(r.roll - t.roll), "geodesic": geodesic_deg(r.rotation, t.rotation)}


def gaze_errors(s: Sample) -> Dict[str, float]:
    """Angular errors (deg) of the right, left and combined gaze; truth and read combined yaw,
    pitch (deg, relative to eye contact); per-eye truth yaw (relative to eye contact)."""
    t, r = s.truth, s.reading
    assert t is not None and r is not None
    comb, origin = t.combined()
    true_angles = direction_angles(comb, origin)
    eye_angles = direction_angles(t.axes, t.centres)
    return {
        "right": angle_deg(r.gaze_direction[0], t.axes[0]),
        "left": angle_deg(r.gaze_direction[1], t.axes[1]),
        "combined": angle_deg(r.gaze_direction[2], comb),
        "true_yaw": float(true_angles[0]), "true_pitch": float(true_angles[1]),
        "read_yaw": float(r.gaze_angles[2, 0]), "read_pitch": float(r.gaze_angles[2, 1]),
        "true_yaw_right": float(eye_angles[0, 0]), "true_yaw_left": float(eye_angles[1, 0]),
    }


#: The parts of a gaze reading that :func:`gaze_sources` swaps for the truth, in table order.
GAZE_SOURCES = ("as read", "true iris centres", "true eyeball centres", "both true")


def gaze_sources(s: Sample, camera) -> Dict[str, float]:
    """Where the combined gaze error of one render comes from: the angular error (deg) of the
    combined gaze recomputed by face3d's eye model (``geometry.ray_sphere_gaze``: each iris
    centre's camera ray met with its eyeball sphere) from face3d's own iris centres and eyeball
    centres, with either or both swapped for the truth (:data:`GAZE_SOURCES`); and the two
    inputs' own errors: iris centre px, eyeball centre mm across the line of sight.

    The true eyeball centres are placed at face3d's distance along their true line of sight
    (each eye's ratio of read to true distance), and each sphere keeps the radius face3d used
    (recovered from its reading: the point its gaze leaves the centre by that radius lies on
    the iris centre's ray): the swap changes where the centre is, not the metric scale.
    ``recomputed`` (face3d's own inputs) checks the recomputation against ``as read``. The eyes
    are combined with face3d's own confidences. camera: the render's ``CameraIntrinsics``. A
    render read from its mirror image has no source split (ValueError).
    """
    from face3d_ros.core.pipeline.geometry import EYEBALL_TO_IRIS_M, ray_sphere_gaze

    t, r = s.truth, s.reading
    assert t is not None and r is not None
    if s.spec.flip:
        raise ValueError("gaze_sources reads unmirrored renders only (the camera is the "
                         "render's)")
    comb, _ = t.combined()
    read_c = r.gaze_origin[:2]  # (2, 3) face3d's eyeball centres, m
    ratio = np.linalg.norm(read_c, axis=1) / np.linalg.norm(t.centres, axis=1)  # (2,)
    true_c = t.centres * ratio[:, None]
    weights = r.gaze_confidence[:2]
    if weights.sum() <= 0.0:
        weights = np.ones(2)

    def rays_of(iris_px: np.ndarray) -> np.ndarray:  # (2, 3) unit camera rays
        rays = np.stack([(iris_px[:, 0] - camera.cx) / camera.fx,
                         (iris_px[:, 1] - camera.cy) / camera.fy, np.ones(2)], axis=-1)
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    # The radius face3d used per eye: centre + radius * direction on the iris's ray (least
    # squares across the ray); the model's nominal radius where the gaze runs along the ray.
    read_rays = rays_of(r.iris_px)
    across = np.eye(3)[None] - np.einsum("ei,ej->eij", read_rays, read_rays)
    pc = np.einsum("eij,ej->ei", across, read_c)
    pd = np.einsum("eij,ej->ei", across, r.gaze_direction[:2])
    norm2 = (pd * pd).sum(-1)
    radius = np.where(norm2 > 1e-9, -(pc * pd).sum(-1) / np.maximum(norm2, 1e-9),
                      EYEBALL_TO_IRIS_M * ratio)

    def combined(iris_px: np.ndarray, centres: np.ndarray) -> float:
        d = ray_sphere_gaze(np.zeros((2, 1, 3)), rays_of(iris_px)[:, None], centres[:, None],
                            radius)[:, 0]  # (2, 3), one eye per row
        return angle_deg((weights[:, None] * d).sum(0), comb)

    lateral = []
    for e in range(2):
        los = t.centres[e] / np.linalg.norm(t.centres[e])
        d = read_c[e] / ratio[e] - t.centres[e]
        lateral.append(float(np.linalg.norm(d - (d @ los) * los)) * 1e3)
    return {
        "as read": angle_deg(r.gaze_direction[2], comb),
        "recomputed": combined(r.iris_px, read_c),
        "true iris centres": combined(t.iris_px, read_c),
        "true eyeball centres": combined(r.iris_px, true_c),
        "both true": combined(t.iris_px, true_c),
        "iris_px": float(np.linalg.norm(r.iris_px - t.iris_px, axis=1).mean()),
        "centre_mm": float(np.mean(lateral)),
    }


def mirror_sums(a: Sample, b: Sample) -> Dict[str, float]:
    """(yaw + mirrored yaw) / 2, deg, of the right, left and combined gaze and of the head.

    ``a`` a render or photo, ``b`` its mirror image; eyes paired by name (the code path of that
    eye). With truth, each eye's truth sum is removed: the rays from the two eyes to the
    camera differ by several degrees, so the right eye's truth yaw is not minus the mirror
    image's right-eye truth yaw (the combined and the head truth sums are zero).
    """
    ra, rb = a.reading, b.reading
    assert ra is not None and rb is not None
    out = {}
    for i, name in enumerate(("right", "left", "combined")):
        out[name] = 0.5 * (ra.gaze_angles[i, 0] + rb.gaze_angles[i, 0])
    out["head"] = 0.5 * (ra.yaw + rb.yaw)
    if a.truth is not None and b.truth is not None and np.all(np.isfinite(a.truth.axes)):
        ta = direction_angles(a.truth.axes, a.truth.centres)[:, 0]
        tb = direction_angles(b.truth.axes, b.truth.centres)[:, 0]
        out["right"] -= 0.5 * (ta[0] + tb[0])
        out["left"] -= 0.5 * (ta[1] + tb[1])
    return {k: float(v) for k, v in out.items()}


def eye_contact(s: Sample) -> Dict[str, float]:
    """Combined gaze of a photo against the ray to the camera: yaw, pitch (deg, relative to eye
    contact, ``direction_angles(direction, origin)``) and the angle between them."""
    r = s.reading
    assert r is not None
    yaw, pitch = direction_angles(r.gaze_direction[2], r.gaze_origin[2])
    out = {"yaw": float(yaw), "pitch": float(pitch),
           "angle": angle_deg(r.gaze_direction[2], -r.gaze_origin[2])}
    for i, name in enumerate(("right", "left")):
        out[name] = angle_deg(r.gaze_direction[i], -r.gaze_origin[i])
    return out


def _in_target(s: Sample) -> bool:
    y, p, r = TARGET_POSE_RANGE
    return abs(s.spec.yaw) <= y and abs(s.spec.pitch) <= p and abs(s.spec.roll) <= r


def pose_mae(samples: Sequence[Sample]) -> Dict[str, float]:
    """n, found, MAE yaw/pitch/roll, mean/max geodesic (deg) over the found samples."""
    found = [s for s in samples if s.found]
    errs = [pose_errors(s) for s in found]
    out = {"n": float(len(samples)), "found": float(len(found))}
    for k in ("yaw", "pitch", "roll"):
        out[k] = _mean([abs(e[k]) for e in errs])
    out["geodesic"] = _mean([e["geodesic"] for e in errs])
    out["geodesic_max"] = _max([e["geodesic"] for e in errs])
    return out


def frontal_offset(s: Sample) -> Dict[str, float]:
    """The reading at zero pose: yaw, pitch, roll and geodesic error, deg."""
    e = pose_errors(s)
    return {"yaw": e["yaw"], "pitch": e["pitch"], "roll": e["roll"], "geodesic": e["geodesic"]}


def expression_curve(weights: Sequence[float], values: Sequence[float]) -> Dict[str, float]:
    """Pearson r of coefficient ``values`` against the driven ``weights`` (ascending) and
    whether they rise monotonically (see :data:`MONOTONE_TOL`, :data:`MONOTONE_MIN_RISE`)."""
    steps = np.diff(np.asarray(values, dtype=np.float64))
    monotone = bool(len(values) >= 2 and np.all(steps >= -MONOTONE_TOL)
                    and values[-1] - values[0] >= MONOTONE_MIN_RISE)
    return {"r": pearson(weights, values), "monotone": monotone}


# --------------------------------------------------------------------------------------------
# Tables


def _f(x, nd: int = 1, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, str):
        return x
    x = float(x)
    if not np.isfinite(x):
        return "n/a"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


@dataclass
class Table:
    """A markdown table: title (what it measures), truth source, header, rows, notes."""

    title: str
    source: str
    header: List[str]
    rows: List[List[str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def markdown(self, stamp: str) -> str:
        """The table with its title line, source/date/machine line and notes."""
        def cells(row: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

        lines = [f"### {self.title}", "", f"_Truth: {self.source}. {stamp}_", "",
                 cells(self.header), "|" + "---|" * len(self.header)]
        lines += [cells(r) for r in self.rows]
        if self.notes:
            lines.append("")
            lines += self.notes
        return "\n".join(lines) + "\n"


def _progress(log, what: str) -> None:
    if log is not None:
        log(what)


def pose_tables(acc: Accuracy, plan: Plan, figures: dict, log=None) -> List[Table]:
    """Table 1: head pose per head."""
    tables = []
    summary = Table("1c. Head pose: frontal offset, yaw->roll leak, range, confidence",
                    f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}",
                    ["head", "frontal yaw", "frontal pitch", "frontal roll", "frontal geodesic",
                     f"yaw->roll leak (|yaw| <= {LEAK_MAX_YAW:.0f})",
                     f"yaw within {YAW_WITHIN_DEG:.0f} deg up to", "detected yaw range",
                     "r(confidence, geodesic error)"])
    mae = Table("1a. Head pose: mean absolute error per angle (deg)",
                f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}",
                ["head", "set", "renders", "found", "MAE yaw", "MAE pitch", "MAE roll",
                 "geodesic mean", "geodesic max"])
    by_range = Table("1b. Head pose: geodesic error by true |yaw| (deg)",
                     f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}",
                     ["head", "range", "renders", "found", "geodesic mean", "geodesic max"])
    pure = Table("1d. Head pose: pure-yaw renders, read yaw / pitch / roll (deg)",
                 f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}",
                 ["true yaw"] + [f"{h} {a}" for h in HEADS for a in ("yaw", "pitch", "roll")])
    pure_rows: Dict[float, List[str]] = {}
    for head in HEADS:
        _progress(log, f"head pose: {head}, {len(plan.poses)} renders")
        samples = [acc.sample(Spec(head, *pose)) for pose in plan.poses]
        sets = (("target range |yaw|<=60, |pitch|<=30, |roll|<=45",
                 [s for s in samples if _in_target(s)]), ("all renders", samples))
        for name, subset in sets:
            m = pose_mae(subset)
            mae.rows.append([head, name, f"{m['n']:.0f}", f"{m['found']:.0f}", _f(m["yaw"]),
                             _f(m["pitch"]), _f(m["roll"]), _f(m["geodesic"]),
                             _f(m["geodesic_max"])])
            if name.startswith("target"):
                figures[f"pose_mae_{head}"] = m
        for lo, hi, label in YAW_BINS:
            subset = [s for s in samples if lo <= abs(s.spec.yaw) <= hi
                      and not (lo > 0 and abs(s.spec.yaw) == lo)]
            found = [s for s in subset if s.found]
            errs = [pose_errors(s)["geodesic"] for s in found]
            by_range.rows.append([head, label, str(len(subset)), str(len(found)), _f(_mean(errs)),
                                  _f(_max(errs))])
        zero = acc.sample(Spec(head))
        pure_yaw = [s for s in samples if s.spec.pitch == 0 and s.spec.roll == 0]
        leak = _max([abs(s.reading.roll) for s in pure_yaw
                     if s.found and abs(s.spec.yaw) <= LEAK_MAX_YAW])
        within = 0.0
        for s in sorted(pure_yaw, key=lambda s: abs(s.spec.yaw)):
            ok = [p for p in pure_yaw if abs(p.spec.yaw) == abs(s.spec.yaw)]
            if all(p.found and abs(pose_errors(p)["yaw"]) <= YAW_WITHIN_DEG for p in ok):
                within = abs(s.spec.yaw)
            else:
                break
        found_yaws = [s.spec.yaw for s in pure_yaw if s.found]
        det = (f"{min(found_yaws):+.0f} .. {max(found_yaws):+.0f}" if found_yaws else "none")
        found = [s for s in samples if s.found]
        r = pearson([s.reading.pose_confidence for s in found],
                    [pose_errors(s)["geodesic"] for s in found])
        off = frontal_offset(zero) if zero.found else None
        if off is None:
            summary.rows.append([head, "lost", "", "", "", _f(leak), f"{within:.0f}", det,
                                 _f(r, 2)])
        else:
            summary.rows.append([head, _f(off["yaw"], 1, True), _f(off["pitch"], 1, True),
                                 _f(off["roll"], 1, True), _f(off["geodesic"]), _f(leak),
                                 f"{within:.0f}", det, _f(r, 2)])
        figures[f"pose_summary_{head}"] = {"frontal": off, "leak": leak, "yaw_within": within,
                                           "detected": found_yaws and [min(found_yaws),
                                                                       max(found_yaws)],
                                           "confidence_r": r}
        for s in pure_yaw:
            row = pure_rows.setdefault(s.spec.yaw, [f"{s.spec.yaw:+.0f}"])
            if s.found:
                row += [_f(s.reading.yaw, 1, True), _f(s.reading.pitch, 1, True),
                        _f(s.reading.roll, 1, True)]
            else:
                row += ["lost", "", ""]
    pure.rows = [pure_rows[k] for k in sorted(pure_rows)]
    summary.notes.append(
        "Frontal: the reading at zero pose. Leak: max |read roll| over pure-yaw renders. "
        "Yaw within: the largest |yaw| up to which every pure-yaw render reads yaw within "
        f"{YAW_WITHIN_DEG:.0f} deg. r < 0 is wanted (confidence drops as the error grows).")
    tables += [mae, by_range, summary, pure]
    return tables


def gaze_tables(acc: Accuracy, plan: Plan, figures: dict, log=None) -> List[Table]:
    """Table 2: gaze on facecap renders and on the photos."""
    src = HEAD_CREDITS["facecap"]
    by_yaw = Table("2a. Gaze: angular error by head yaw, eye grid "
                   f"yaw {_span([e[0] for e in plan.gaze_eyes])} x pitch "
                   f"{_span([e[1] for e in plan.gaze_eyes])} (deg)", src,
                   ["head yaw", "renders", "found", "MAE right", "MAE left", "MAE combined",
                    "max combined", "combined bias yaw", "combined bias pitch", "gain yaw",
                    "gain pitch"])
    _progress(log, f"gaze: {len(plan.gaze_head_yaws) * len(plan.gaze_eyes)} renders")
    all_found: List[Sample] = []
    for hy in plan.gaze_head_yaws:
        samples = [acc.sample(Spec("facecap", yaw=hy, eye_yaw=ey, eye_pitch=ep))
                   for ey, ep in plan.gaze_eyes]
        found = [s for s in samples if s.found]
        all_found += found
        e = [gaze_errors(s) for s in found]
        by_yaw.rows.append([
            f"{hy:+.0f}", str(len(samples)), str(len(found)), _f(_mean([x["right"] for x in e])),
            _f(_mean([x["left"] for x in e])), _f(_mean([x["combined"] for x in e])),
            _f(_max([x["combined"] for x in e])),
            _f(_mean([x["read_yaw"] - x["true_yaw"] for x in e]), 1, True),
            _f(_mean([x["read_pitch"] - x["true_pitch"] for x in e]), 1, True),
            _f(slope([x["true_yaw"] for x in e], [x["read_yaw"] for x in e]), 2),
            _f(slope([x["true_pitch"] for x in e], [x["read_pitch"] for x in e]), 2)])
        figures[f"gaze_mae_head_yaw_{hy:+.0f}"] = _mean([x["combined"] for x in e])
    by_yaw.notes.append(
        "Truth combined gaze: the normalised mean of the two optical axes from the mean of the "
        "eyeball centres. Bias: mean (read - truth) of the combined yaw / pitch relative to eye "
        "contact (pitch > 0 down). Gain: slope of read against true combined yaw / pitch.")

    grid = Table("2b. Gaze: combined angular error by eye rotation, head yaw 0 (deg)", src,
                 ["eye pitch \\ eye yaw"] + [f"{y:+.0f}" for y in
                                             sorted({e[0] for e in plan.gaze_eyes})])
    for ep in sorted({e[1] for e in plan.gaze_eyes}):
        row = [f"{ep:+.0f}"]
        for ey in sorted({e[0] for e in plan.gaze_eyes}):
            s = acc.sample(Spec("facecap", yaw=0.0, eye_yaw=ey, eye_pitch=ep))
            row.append(_f(gaze_errors(s)["combined"]) if s.found else "lost")
        grid.rows.append(row)

    mirror = Table("2c. Gaze: mirror bias, (yaw + mirrored yaw) / 2 (deg)", src,
                   ["head yaw", "eye yaw", "right", "left", "combined", "head yaw sum / 2"])
    sums = []
    for hy in plan.mirror_head_yaws:
        for ey in plan.mirror_eye_yaws:
            spec = Spec("facecap", yaw=hy, eye_yaw=ey)
            a, b = acc.sample(spec), acc.sample(spec.mirrored())
            if not (a.found and b.found):
                mirror.rows.append([f"{hy:+.0f}", f"{ey:+.0f}", "lost", "", "", ""])
                continue
            m = mirror_sums(a, b)
            sums.append(m)
            mirror.rows.append([f"{hy:+.0f}", f"{ey:+.0f}"] + [
                _f(m[k], 1, True) for k in ("right", "left", "combined", "head")])
    bias = {k: abs(_mean([m[k] for m in sums])) for k in ("right", "left", "combined", "head")}
    mirror.rows.append(["all", "|mean|"] + [_f(bias[k]) for k in
                                            ("right", "left", "combined", "head")])
    figures["render_mirror_bias"] = bias
    mirror.notes.append(
        "Each render and its left-right mirror image; eyes paired by name (each eye's own code "
        "path), each eye's truth sum removed (the two eyes' rays to the camera differ). Zero "
        "means the reading mirrors exactly.")

    conf = Table("2d. Gaze: confidence against angular error (Pearson r)", src,
                 ["eye", "n", "r(confidence, error)", "mean confidence"])
    pooled_c, pooled_e = [], []
    for i, name in enumerate(("right", "left", "combined")):
        c = [s.reading.gaze_confidence[i] for s in all_found]
        e = [gaze_errors(s)[name] for s in all_found]
        if i < 2:
            pooled_c += c
            pooled_e += e
        conf.rows.append([name, str(len(c)), _f(pearson(c, e), 2), _f(_mean(c), 2)])
    conf.rows.append(["both eyes pooled", str(len(pooled_c)), _f(pearson(pooled_c, pooled_e), 2),
                      _f(_mean(pooled_c), 2)])
    figures["gaze_confidence_r"] = pearson(pooled_c, pooled_e)
    conf.notes.append("r < 0 is wanted (confidence drops as the error grows); n/a when the "
                      "confidence is constant.")
    return [by_yaw, grid, mirror, conf, gaze_source_table(acc, plan, figures)] + photo_tables(
        acc, figures, log)


def gaze_source_table(acc: Accuracy, plan: Plan, figures: dict) -> Table:
    """Table 2g: the combined gaze error of the eye grid split by its two inputs
    (:func:`gaze_sources`), per head yaw."""
    table = Table("2g. Gaze: where the error comes from, combined MAE with face3d's inputs "
                  "swapped for the truth (deg)", HEAD_CREDITS["facecap"],
                  ["head yaw", "renders"] + list(GAZE_SOURCES)
                  + ["iris centre error (px)", "eyeball centre error across the line of "
                     "sight (mm)"])
    for hy in plan.gaze_head_yaws:
        found = [s for s in (acc.sample(Spec("facecap", yaw=hy, eye_yaw=ey, eye_pitch=ep))
                             for ey, ep in plan.gaze_eyes) if s.found]
        src = [gaze_sources(s, acc.camera) for s in found]
        means = {k: _mean([x[k] for x in src]) for k in src[0]} if src else {}
        table.rows.append([f"{hy:+.0f}", str(len(found))]
                          + [_f(means.get(k)) for k in GAZE_SOURCES]
                          + [_f(means.get("iris_px"), 2), _f(means.get("centre_mm"), 2)])
        figures[f"gaze_sources_head_yaw_{hy:+.0f}"] = means
    table.notes.append(
        "Each render's combined gaze recomputed by face3d's eye model (each iris centre's camera "
        "ray met with its eyeball sphere, the eyes weighted by face3d's confidences) from "
        "face3d's iris centres (landmarks 468, 473) and eyeball centres, then with the true "
        "iris centres (projected), the true eyeball centres (at face3d's distance along their "
        "true line of sight, with the radius face3d used: the metric scale is kept), or both. "
        "Recomputed from face3d's own inputs it is the reading itself. Both true: the eye model "
        "with face3d's sphere radius (its metric scale of the eye) as the only input of its "
        "own. Iris centre error: mean px over both eyes; eyeball centre error: mean over "
        "both eyes at the true distance.")
    return table


def photo_tables(acc: Accuracy, figures: dict, log=None) -> List[Table]:
    """Table 2e/2f: eye contact and the mirror test on the two real photos."""
    _progress(log, "photos")
    contact = Table("2e. Gaze: eye contact on real photos (person looking into the lens)",
                    PHOTO_CREDITS,
                    ["photo", "combined yaw", "combined pitch", "combined angle to camera ray",
                     "right eye angle", "left eye angle", "gaze confidence (combined)"])
    mirror = Table("2f. Gaze: photo mirror test, (yaw + mirrored yaw) / 2 (deg)", PHOTO_CREDITS,
                   ["photo", "right", "left", "combined", "head yaw"])
    for name in ("astronaut", "grace_hopper"):
        try:
            a, b = acc.photo(name)
        except ImportError as exc:
            contact.rows.append([name, f"not measured ({exc})", "", "", "", "", ""])
            continue
        if not a.found:
            contact.rows.append([name, "no face", "", "", "", "", ""])
            continue
        c = eye_contact(a)
        figures[f"eye_contact_{name}"] = c
        contact.rows.append([name, _f(c["yaw"], 1, True), _f(c["pitch"], 1, True),
                             _f(c["angle"]), _f(c["right"]), _f(c["left"]),
                             _f(a.reading.gaze_confidence[2], 2)])
        if b.found:
            m = mirror_sums(a, b)
            figures[f"photo_mirror_{name}"] = m
            mirror.rows.append([name] + [_f(m[k], 1, True)
                                         for k in ("right", "left", "combined", "head")])
    contact.notes.append("Angles relative to the ray from each eye (the combined: from the "
                         "mid-point of the eyeballs) to the camera: 0 is eye contact. Default "
                         "intrinsics (60 deg horizontal field of view).")
    return [contact, mirror]


def _span(values: Sequence[float]) -> str:
    return f"{min(values):+.0f}..{max(values):+.0f}"


def _blend_spec(blend: str, weight: float, head_yaw: float = 0.0) -> Spec:
    return Spec("facecap", yaw=head_yaw, blend=((blend, float(weight)),) if weight > 0 else ())


def expression_tables(acc: Accuracy, plan: Plan, figures: dict, log=None) -> List[Table]:
    """Table 3: expression coefficients against blendshape weights (facecap)."""
    from face3d_ros.core.pipeline.expression import EXPRESSION_NAMES

    src = HEAD_CREDITS["facecap"]
    wcols = [f"w={w:g}" for w in plan.weights]
    curve = Table("3a. Expression: coefficient against driven ARKit blendshape weight",
                  src, ["blendshape", "coefficient"] + wcols
                  + ["Pearson r", "monotone", "max change at head yaw "
                     + "/".join(f"{y:+.0f}" for y in plan.expression_head_yaws),
                     "other side at w=1", "swapped"])
    _progress(log, f"expression: {len(plan.expressions)} blendshapes")
    neutral = acc.sample(_blend_spec("", 0.0))
    for blend, coef, other in EXPRESSIONS:
        if blend not in plan.expressions:
            continue
        samples = [acc.sample(_blend_spec(blend, w)) for w in plan.weights]
        values = [_f(s.reading.expression[coef], 2) if s.found else "lost" for s in samples]
        pts = [(w, s.reading.expression[coef]) for w, s in zip(plan.weights, samples) if s.found]
        fit = expression_curve([p[0] for p in pts], [p[1] for p in pts])
        r, mono = fit["r"], fit["monotone"]
        change = []
        for w in plan.yaw_weights:
            base = acc.sample(_blend_spec(blend, w))
            for hy in plan.expression_head_yaws:
                s = acc.sample(_blend_spec(blend, w, hy))
                if s.found and base.found:
                    change.append(abs(s.reading.expression[coef] - base.reading.expression[coef]))
        top = acc.sample(_blend_spec(blend, 1.0))
        other_v = swapped = None
        if other is not None and top.found:
            other_v = top.reading.expression[other]
            swapped = other_v > top.reading.expression[coef]
        curve.rows.append([blend, coef] + values + [
            _f(r, 2), _f(mono), _f(_max(change), 2), _f(other_v, 2),
            "n/a" if swapped is None else _f(swapped)])
        figures[f"expression_{coef}"] = {
            "r": r, "monotone": mono, "yaw_change": _max(change), "other_side": other_v,
            "values": [p[1] for p in pts], "weights": [p[0] for p in pts]}
    curve.notes.append(
        f"Monotone: no step down by more than {MONOTONE_TOL} and a rise of at least "
        f"{MONOTONE_MIN_RISE} from weight 0 to 1. Max change: |value at head yaw +-30 - value at "
        "head yaw 0| at the same weight (" + ", ".join(f"{w:g}" for w in plan.yaw_weights)
        + "). Swapped: the other side's coefficient reads higher than the driven side's.")

    neu = Table("3b. Expression: neutral face, every coefficient", src,
                ["coefficient"] + [f"head yaw {y:+.0f}" for y in
                                   (0.0,) + tuple(plan.expression_head_yaws)])
    neutral_max = 0.0
    for name in EXPRESSION_NAMES:
        row = [name]
        for hy in (0.0,) + tuple(plan.expression_head_yaws):
            s = acc.sample(_blend_spec("", 0.0, hy))
            v = s.reading.expression.get(name) if s.found else None
            row.append(_f(v, 2))
            if v is not None and hy == 0.0:
                neutral_max = max(neutral_max, v)
        neu.rows.append(row)
    figures["neutral_max"] = neutral_max if neutral.found else None
    figures["neutral"] = neutral.reading.expression if neutral.found else None

    closed = Table("3c. Expression: closed eye (eyeBlink = 1), head yaw 0", src,
                   ["blendshape", "that eye's blink", "other eye's blink",
                    "that eye's gaze confidence", "other eye's gaze confidence"])
    for blend, coef, other, eye in (("eyeBlink_L", "eye_blink_left", "eye_blink_right", 1),
                                    ("eyeBlink_R", "eye_blink_right", "eye_blink_left", 0)):
        s = acc.sample(_blend_spec(blend, 1.0))
        if not s.found:
            closed.rows.append([blend, "lost", "", "", ""])
            continue
        e = s.reading.expression
        closed.rows.append([blend, _f(e[coef], 2), _f(e[other], 2),
                            _f(s.reading.gaze_confidence[eye], 2),
                            _f(s.reading.gaze_confidence[1 - eye], 2)])
        figures[f"closed_{coef}"] = {"blink": e[coef],
                                     "confidence": float(s.reading.gaze_confidence[eye])}
    return [curve, neu, closed, own_eye_table(acc, plan, figures),
            blink_sequence_table(acc, figures)] + resting_face_tables(acc, plan, figures) + [
        turned_reading_table(acc, plan, figures)]


#: iBUG-68 point pairs (0-based) whose image distance the expressions of table 3h read:
#: the inner lips' midpoints (62 upper, 66 lower), each eye's two upper/lower lid pairs and
#: its corners (subject's right eye 36-41, left 42-47).
IBUG_INNER_LIPS = (62, 66)
IBUG_LIDS = {"right": (((37, 41), (38, 40)), (36, 39)), "left": (((43, 47), (44, 46)), (42, 45))}
IBUG_OUTER_CORNERS = (36, 45)


def ibug_openings(px: np.ndarray) -> Dict[str, float]:
    """Image-plane openings of (68, 2) iBUG-68 px: ``mouth`` the inner-lip gap over the outer
    eye-corner distance, ``eye_right`` / ``eye_left`` the mean lid gap of the two lid pairs
    over that eye's corner distance. The same points and ratios for the truth (projected marks)
    and for face3d's 68-point subset, so each ratio compares like with like."""
    def dist(i: int, j: int) -> float:
        return float(np.linalg.norm(px[i] - px[j]))

    out = {"mouth": dist(*IBUG_INNER_LIPS) / dist(*IBUG_OUTER_CORNERS)}
    for side, (pairs, corners) in IBUG_LIDS.items():
        out[f"eye_{side}"] = _mean([dist(*p) for p in pairs]) / dist(*corners)
    return out


def turned_reading_table(acc: Accuracy, plan: Plan, figures: dict) -> Table:
    """Table 3h: what the landmark networks read of an open mouth and a closed eye as the head
    turns, against the projected truth: the image evidence the expression coefficients are
    measured from (table 3a's change with head yaw)."""
    yaws = (0.0,) + tuple(plan.expression_head_yaws)
    cases = (("jawOpen", 0.5, "mouth", "jaw_open"), ("jawOpen", 1.0, "mouth", "jaw_open"),
             ("eyeBlink_L", 1.0, "eye_left", "eye_blink_left"),
             ("eyeBlink_R", 1.0, "eye_right", "eye_blink_right"))
    table = Table("3h. Expression: what the networks read of an open mouth and a closed eye as "
                  "the head turns, against the projected truth", HEAD_CREDITS["facecap"],
                  ["blendshape", "weight", "measured (image plane)"]
                  + [f"{what} at head yaw {y:+.0f}" for y in yaws
                     for what in ("truth", "read")]
                  + ["coefficient at head yaw " + " / ".join(f"{y:+.0f}" for y in yaws)])
    for blend, weight, key, coef in cases:
        if blend not in plan.expressions:
            continue
        row = [blend, f"{weight:g}", {"mouth": "inner-lip gap / outer eye corners",
                                      "eye_left": "left lid gap / its eye corners",
                                      "eye_right": "right lid gap / its eye corners"}[key]]
        coefs = []
        for hy in yaws:
            smp = acc.sample(_blend_spec(blend, weight, hy))
            if not smp.found or smp.truth.ibug68_px is None:
                row += ["n/a", "lost" if not smp.found else "n/a"]
                coefs.append("lost" if not smp.found else "n/a")
                continue
            truth = ibug_openings(smp.truth.ibug68_px)[key]
            read = ibug_openings(smp.reading.ibug68_px)[key]
            row += [_f(truth, 2), _f(read, 2)]
            coefs.append(_f(smp.reading.expression[coef], 2))
            figures.setdefault("turned_reading", {})[f"{blend} {weight:g} {hy:+.0f}"] = {
                "truth": truth, "read": read, "coefficient": smp.reading.expression[coef]}
        table.rows.append(row + [" / ".join(coefs)])
    table.notes.append(
        "iBUG-68 points, truth: marked on the facecap mesh and projected (table 4); read: "
        "face3d's 68-point subset. Mouth: points 62-66 over 36-45; eyes: the mean of the lid "
        "pairs 37-41 and 38-40 (43-47 and 44-46) over that eye's corners. A ratio of image "
        "distances along the same lines, so the turn foreshortens truth and reading alike.")
    return table


#: Frames of the neutral face a track sees before its blinks are read (table 3d): over the
#: ``OpenEyeBaseline`` minimum of 30 (1 s at 30 Hz).
OWN_EYE_WARMUP_FRAMES = 40


#: A blink as a stream shows it (table 3e): eyeBlink_L weights of the frames after the neutral
#: warm-up, 30 Hz: half closed, closed for two frames (67 ms), half closed, open.
BLINK_SEQUENCE = (0.0, 0.6, 1.0, 1.0, 0.6, 0.0, 0.0, 0.0)


def blink_sequence_table(acc: Accuracy, figures: dict) -> Table:
    """Table 3e: eye_blink_left and the left eye's gaze confidence frame by frame through a
    short blink of a tracked face, with the node's default smoothing."""
    src = HEAD_CREDITS["facecap"]
    cols = [f"frame {k + 1}" for k in range(len(BLINK_SEQUENCE))]
    t = Table("3e. Expression: a two-frame blink of a tracked face, frame by frame (smoothing "
              "on, 30 Hz)", src, ["reading"] + cols)
    readings = acc.tracked([_blend_spec("eyeBlink_L", w) for w in BLINK_SEQUENCE],
                           _blend_spec("", 0.0), OWN_EYE_WARMUP_FRAMES, smoothing=True)
    t.rows.append(["eyeBlink_L weight"] + [f"{w:g}" for w in BLINK_SEQUENCE])
    t.rows.append(["eye_blink_left"] + [_f(r.expression["eye_blink_left"], 2) if r else "lost"
                                        for r in readings])
    t.rows.append(["left gaze confidence"] + [_f(r.gaze_confidence[1], 2) if r else "lost"
                                              for r in readings])
    closed = [r for w, r in zip(BLINK_SEQUENCE, readings) if w == 1.0 and r is not None]
    figures["blink_sequence"] = {
        "closed_blink_min": min(r.expression["eye_blink_left"] for r in closed) if closed
        else None,
        "closed_confidence_max": max(float(r.gaze_confidence[1]) for r in closed) if closed
        else None}
    t.notes.append(
        f"{OWN_EYE_WARMUP_FRAMES} frames of the neutral face first, then one frame per column. "
        "The expression's eye openness is read from the landmarks before the tracker's "
        "smoothing, and an eye closed there has no gaze confidence; through the smoothing (as "
        "before) the same blink read 0.00 / 0.40 / 0.68 / 0.61 / 0.42 / 0.28 / 0.14 on frames "
        "2-8, with gaze confidence 1.00 / 0.64 on frames 3 / 4.")
    return t


def own_eye_table(acc: Accuracy, plan: Plan, figures: dict) -> Table:
    """Table 3d: the eye coefficients of a tracked face, measured against the person's own
    open eye (``expression.OpenEyeBaseline``) after a second of the neutral face."""
    src = HEAD_CREDITS["facecap"]
    t = Table("3d. Expression: eyes of a tracked face, against the person's own open eye "
              "(head yaw 0)", src, ["blendshape", "coefficient"]
              + [f"w={w:g}" for w in plan.weights]
              + ["Pearson r", "monotone", "other side at w=1", "swapped"])
    eyes = [e for e in EXPRESSIONS if e[0].startswith(("eyeBlink", "eyeWide"))
            and e[0] in plan.expressions]
    for blend, coef, other in eyes:
        readings = acc.tracked([_blend_spec(blend, w) for w in plan.weights],
                               _blend_spec("", 0.0), OWN_EYE_WARMUP_FRAMES)
        pts = [(w, r.expression[coef]) for w, r in zip(plan.weights, readings) if r is not None]
        fit = expression_curve([p[0] for p in pts], [p[1] for p in pts])
        top = readings[-1] if plan.weights[-1] == 1.0 else None
        other_v = None if top is None or other is None else top.expression[other]
        swapped = None if other_v is None or top is None else other_v > top.expression[coef]
        t.rows.append([blend, coef]
                      + [_f(r.expression[coef], 2) if r is not None else "lost" for r in readings]
                      + [_f(fit["r"], 2), _f(fit["monotone"]), _f(other_v, 2),
                         "n/a" if swapped is None else _f(swapped)])
        figures[f"own_eye_{coef}"] = {"r": fit["r"], "monotone": fit["monotone"],
                                      "values": [p[1] for p in pts]}
    t.notes.append(
        f"One stream per row ({OWN_EYE_WARMUP_FRAMES} frames of the neutral face, then one frame "
        "per weight; no smoothing): the eyes are measured against the track's own open eye "
        "(90 % / 110 % of it start a blink / eye_wide) instead of the stored average's (85 % / "
        "115 %, table 3a). facecap's eyes read 14 % more open than the average's.")
    return t


#: A person's small head motion while the track learns their resting face (tables 3f, 3g): the
#: (yaw, pitch) deg of the warm-up frames, cycled: a loop around facing the camera that never
#: passes through the pose read afterwards, at most 6 deg per frame (a tracked head); seven
#: poses, so that a sample every 6 frames (``RestingFace``) meets all of them.
RESTING_SWAY = ((3.0, 2.0), (6.0, -2.0), (3.0, -4.0), (0.0, -5.0), (-3.0, -2.0), (-6.0, 2.0),
                (-3.0, 4.0))
#: Warm-up frames of the sway (4 s at 30 Hz): over the ``RestingFace`` minimum of 15 samples,
#: one every 6 frames (3 s).
RESTING_WARMUP_FRAMES = 120
#: How a tracked head turns from facing the camera to +-30 deg (table 3f): 5 deg per frame,
#: then held for 3 frames (a jump of 10 deg or more between frames can start a new track).
TURN_STEP_DEG = 5.0


def resting_sway(spec: Spec) -> List[Spec]:
    """The warm-up frames of :data:`RESTING_SWAY` around ``spec``'s head pose."""
    return [Spec(**{**spec.__dict__, "yaw": spec.yaw + y, "pitch": spec.pitch + p})
            for y, p in RESTING_SWAY]


def turn_to(yaw: float, blend: Tuple = ()) -> List[Spec]:
    """facecap frames turning from facing the camera to head ``yaw`` deg (``TURN_STEP_DEG``
    per frame), then held for 3 frames."""
    steps = int(round(abs(yaw) / TURN_STEP_DEG))
    path = [Spec("facecap", yaw=float(np.sign(yaw) * TURN_STEP_DEG * k), blend=blend)
            for k in range(1, steps + 1)]
    return path + [path[-1]] * 3 if path else [Spec("facecap", blend=blend)]


def resting_face_tables(acc: Accuracy, plan: Plan, figures: dict) -> List[Table]:
    """Tables 3f and 3g: a tracked face measured against the person's own resting face
    (``expression.RestingFace``) after four seconds of a neutral head moving a little: the
    neutral face facing the camera and turned, and each blendshape's coefficient against its
    weight (does the resting face absorb the expression?)."""
    from face3d_ros.core.pipeline.expression import EXPRESSION_NAMES

    src = HEAD_CREDITS["facecap"]
    yaws = (0.0,) + tuple(plan.expression_head_yaws)
    neu = Table("3f. Expression: a tracked neutral face, against the person's own resting face",
                src, ["coefficient", "single image, head yaw +0"]
                + [f"tracked, head yaw {y:+.0f}" for y in yaws])
    neutral = Spec("facecap")
    single = acc.sample(neutral)
    tracked = {}
    for y in yaws:
        reads = acc.tracked(turn_to(y), resting_sway(neutral), RESTING_WARMUP_FRAMES)
        tracked[y] = reads[-1]
    for name in EXPRESSION_NAMES:
        neu.rows.append([name, _f(single.reading.expression[name], 2) if single.found else "lost"]
                        + [_f(tracked[y].expression[name], 2) if tracked[y] else "lost"
                           for y in yaws])
    for y in yaws:
        r = tracked[y]
        figures[f"tracked_neutral_max_yaw_{y:+.0f}"] = (max(r.expression.values())
                                                        if r is not None else None)
    neu.notes.append(
        f"Tracked: one stream per column, {RESTING_WARMUP_FRAMES} frames of the neutral head "
        "swaying within 6 deg of facing the camera (yaw, pitch "
        + ", ".join(f"{a:+g}/{b:+g}" for a, b in RESTING_SWAY) + "), then turned "
        f"{TURN_STEP_DEG:g} deg per frame to the column's yaw and held for 3 frames (no "
        "smoothing). The resting face is learnt from frames within 20 deg of facing the "
        "camera, each measure within what neutral faces read of the stored average "
        "(expression.resting_spread).")

    wcols = [f"w={w:g}" for w in plan.weights]
    curve = Table("3g. Expression: coefficient against blendshape weight, tracked, against the "
                  "person's own resting face (head yaw 0)", src,
                  ["blendshape", "coefficient"] + wcols + ["Pearson r", "monotone",
                                                           "single image at w=1"])
    for blend, coef, _other in EXPRESSIONS:
        if blend not in plan.expressions or blend.startswith(("eyeBlink", "eyeWide")):
            continue
        specs = [_blend_spec(blend, w) for w in plan.weights]
        readings = acc.tracked(specs, resting_sway(neutral), RESTING_WARMUP_FRAMES)
        pts = [(w, r.expression[coef]) for w, r in zip(plan.weights, readings) if r is not None]
        fit = expression_curve([p[0] for p in pts], [p[1] for p in pts])
        top = acc.sample(_blend_spec(blend, plan.weights[-1]))
        curve.rows.append([blend, coef]
                          + [_f(r.expression[coef], 2) if r is not None else "lost"
                             for r in readings]
                          + [_f(fit["r"], 2), _f(fit["monotone"]),
                             _f(top.reading.expression[coef], 2) if top.found else "lost"])
        figures[f"resting_{coef}"] = {"r": fit["r"], "monotone": fit["monotone"],
                                      "values": [p[1] for p in pts]}
    curve.notes.append(
        f"One stream per row: {RESTING_WARMUP_FRAMES} frames of the swaying neutral head (table "
        "3f), then one frame per weight. Eyes: table 3d. Single image at w=1: table 3a's "
        "reading, against the stored average.")
    return [neu, curve]


def ibug68_table(acc: Accuracy, figures: dict) -> Table:
    """Table 4: the 68-point subset against marks on the facecap mesh, when the renderer has
    them (``head_render.ibug68_truth``); otherwise a placeholder saying it is not measured."""
    src = HEAD_CREDITS["facecap"]
    if getattr(acc.hr, "ibug68_truth", None) is None:
        t = Table("4. 68-point subset: NME68 against iBUG-68 marks -- not measured", src,
                  ["view", "NME68"], [["all", "not measured"]])
        t.notes.append("The renderer has no iBUG-68 marks on the facecap mesh yet "
                       "(head_render.ibug68_truth); this table fills in once it does.")
        return t
    t = Table("4. 68-point subset: NME68, outer-eye-corner normalised (%)", src,
              ["head yaw", "NME68", "without jaw", "jaw (0-16)", "brows (17-26)"])
    for hy in (0.0, -30.0, 30.0):
        s = acc.sample(Spec("facecap", yaw=hy))
        if not s.found or s.truth.ibug68_px is None:
            t.rows.append([f"{hy:+.0f}", "lost", "", "", ""])
            continue
        d = np.linalg.norm(s.reading.ibug68_px - s.truth.ibug68_px, axis=1) / s.truth.corner_px
        vals = [d.mean(), d[17:].mean(), d[:17].mean(), d[17:27].mean()]
        figures[f"nme68_head_yaw_{hy:+.0f}"] = float(d.mean())
        t.rows.append([f"{hy:+.0f}"] + [_f(100 * v) for v in vals])
    return t


def metric_tables(acc: Accuracy, plan: Plan, figures: dict) -> List[Table]:
    """Table 5: metric scale (translation z, outer eye-corner distance) against truth."""
    header = ["head yaw", "eye yaw", "eye pitch", "z truth (m)", "z read (m)", "z error %",
              "eye-corner midpoint z error %", "corner distance truth (mm)", "read (mm)",
              "error %"]
    tables = []
    for head in ("facecap", "lps"):
        title = ("5a. Metric scale: translation z and outer eye-corner distance, facecap"
                 if head == "facecap" else
                 "5b. Metric scale on the Lee Perry-Smith scan (closed eyes: the iris "
                 "scale is meaningless there; shown apart)")
        t = Table(title, HEAD_CREDITS[head], list(header))
        specs = [Spec(head, yaw=y) for y, p, r in plan.poses
                 if p == 0 and r == 0 and abs(y) <= TARGET_POSE_RANGE[0]]
        specs.sort(key=lambda s: s.yaw)
        if head == "facecap":
            specs += [Spec(head, eye_yaw=ey, eye_pitch=ep) for ey, ep in plan.gaze_eyes
                      if (ey == 0) != (ep == 0)]
        errs = []
        for spec in specs:
            s = acc.sample(spec)
            if not s.found:
                t.rows.append([f"{spec.yaw:+.0f}", f"{spec.eye_yaw:+.0f}",
                               f"{spec.eye_pitch:+.0f}", "lost"] + [""] * 6)
                continue
            tz, rz = s.truth.translation[2], s.reading.translation[2]
            zerr = 100 * (rz - tz) / tz
            merr = 100 * (s.reading.corner_mid[2] - s.truth.corner_mid[2]) / s.truth.corner_mid[2]
            derr = 100 * (s.reading.corner_distance - s.truth.corner_distance) / (
                s.truth.corner_distance)
            if spec.eye_yaw == 0 and spec.eye_pitch == 0:
                errs.append((zerr, merr, derr))
            t.rows.append([f"{spec.yaw:+.0f}", f"{spec.eye_yaw:+.0f}", f"{spec.eye_pitch:+.0f}",
                           _f(tz, 3), _f(rz, 3), _f(zerr, 1, True), _f(merr, 1, True),
                           _f(1000 * s.truth.corner_distance),
                           _f(1000 * s.reading.corner_distance),
                           _f(derr, 1, True)])
        if errs:
            e = np.abs(np.array(errs))
            t.rows.append(["|yaw| <= 60", "0", "0", "", "mean abs", _f(e[:, 0].mean()),
                           _f(e[:, 1].mean()), "", "", _f(e[:, 2].mean())])
            figures[f"metric_{head}"] = {"z_err_pct": float(e[:, 0].mean()),
                                         "corner_mid_z_err_pct": float(e[:, 1].mean()),
                                         "corner_err_pct": float(e[:, 2].mean())}
        t.notes.append("Truth translation: the point between the eyeball centres; face3d's "
                       "translation is 'between the eyes', so part of the z error is where each "
                       "puts that point. The eye-corner midpoint (landmarks 33, 263 against the "
                       "mesh's outer eye corners) compares like with like.")
        tables.append(t)
    return tables


def pupil_tables(acc: Accuracy, plan: Plan, figures: dict) -> List[Table]:
    """Table 6: iris-centre pixel error (landmarks 468, 473) against the projected truth."""
    src = HEAD_CREDITS["facecap"]
    header = ["n eyes", "mean px right", "mean px left", "max px",
              "mean % of eye-corner px", "mean pupil visibility"]

    def row(samples: Sequence[Sample]) -> List[str]:
        d, pct, vis = [], [], []
        right, left = [], []
        for s in samples:
            if not s.found:
                continue
            e = np.linalg.norm(s.reading.iris_px - s.truth.iris_px, axis=1)
            right.append(e[0])
            left.append(e[1])
            d += list(e)
            pct += list(100 * e / s.truth.corner_px)
            vis += list(s.truth.pupil_visibility)
        return [str(len(d)), _f(_mean(right)), _f(_mean(left)), _f(_max(d)), _f(_mean(pct)),
                _f(_mean(vis), 2)]

    by_yaw = Table("6a. Iris centre pixel error by head yaw (eye grid)", src,
                   ["head yaw"] + header)
    for hy in plan.gaze_head_yaws:
        samples = [acc.sample(Spec("facecap", yaw=hy, eye_yaw=ey, eye_pitch=ep))
                   for ey, ep in plan.gaze_eyes]
        by_yaw.rows.append([f"{hy:+.0f}"] + row(samples))
        if hy == 0:
            figures["iris_px_head_yaw_0"] = _mean(
                [np.linalg.norm(s.reading.iris_px - s.truth.iris_px, axis=1).mean()
                 for s in samples if s.found])
    by_eye = Table("6b. Iris centre pixel error by eye rotation, head yaw 0", src,
                   ["eye rotation"] + header)
    for ey in sorted({e[0] for e in plan.gaze_eyes}):
        samples = [acc.sample(Spec("facecap", eye_yaw=ey, eye_pitch=ep))
                   for y, ep in plan.gaze_eyes if y == ey]
        by_eye.rows.append([f"eye yaw {ey:+.0f}"] + row(samples))
    for ep in sorted({e[1] for e in plan.gaze_eyes}):
        samples = [acc.sample(Spec("facecap", eye_yaw=ey, eye_pitch=ep))
                   for ey, p in plan.gaze_eyes if p == ep]
        by_eye.rows.append([f"eye pitch {ep:+.0f}"] + row(samples))
    by_yaw.notes.append("Truth: the centre of the iris disc projected (head_render "
                        "iris_centres_px); face3d: landmarks 468 (subject's right) and 473.")
    return [by_yaw, by_eye]


def condition_tables(acc: Accuracy, plan: Plan, figures: dict, log=None) -> List[Table]:
    """Table 7: the same measures under each light setup and at each face size."""
    _progress(log, "lights and face sizes")
    src = f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}"
    lights = Table("7a. Lights: pose and gaze error per light setup", src,
                   ["light", "renders", "found", "lps geodesic mean", "facecap geodesic mean",
                    "facecap combined gaze MAE"])
    for light in LIGHT_SETUPS:
        geo: Dict[str, List[float]] = {h: [] for h in HEADS}
        gaze, n, found = [], 0, 0
        for hy, ey, ep in plan.light_poses:
            for head in HEADS:
                s = acc.sample(Spec(head, yaw=hy, light=light, eye_yaw=ey if head == "facecap"
                                    else 0.0, eye_pitch=ep if head == "facecap" else 0.0))
                n += 1
                if not s.found:
                    continue
                found += 1
                geo[head].append(pose_errors(s)["geodesic"])
                if head == "facecap":
                    gaze.append(gaze_errors(s)["combined"])
        lights.rows.append([light, str(n), str(found), _f(_mean(geo["lps"])),
                            _f(_mean(geo["facecap"])), _f(_mean(gaze))])
    lights.notes.append("Poses (head yaw, eye yaw, eye pitch): " + ", ".join(
        f"({a:+.0f}, {b:+.0f}, {c:+.0f})" for a, b, c in plan.light_poses)
        + "; lps with its eyes closed. Setups: studio (key + two fills), side (one strong light "
        "from the image left), dim top (one weak light from above).")
    sizes = Table("7b. Face size: detection and error per face box size", src,
                  ["face px", "eye corners px", "head yaw", "lps found", "lps geodesic",
                   "facecap found", "facecap geodesic", "facecap combined gaze error",
                   "facecap z error %"])
    for size in plan.sizes:
        for hy in plan.size_head_yaws:
            cells = [f"{size:.0f}", f"{size / FACE_PER_EYE_CORNERS:.0f}", f"{hy:+.0f}"]
            for head in HEADS:
                s = acc.sample(Spec(head, yaw=hy, eye_px=size / FACE_PER_EYE_CORNERS))
                cells += [_f(s.found), _f(pose_errors(s)["geodesic"]) if s.found else ""]
                if head == "facecap":
                    if s.found:
                        z = 100 * (s.reading.translation[2] - s.truth.translation[2]) / (
                            s.truth.translation[2])
                        cells += [_f(gaze_errors(s)["combined"]), _f(z, 1, True)]
                    else:
                        cells += ["", ""]
            sizes.rows.append(cells)
    sizes.notes.append(f"Face box ~ {FACE_PER_EYE_CORNERS} x the outer eye-corner distance of "
                       "the frontal face; the head is moved away to shrink it.")
    return [lights, sizes]


def headline(figures: dict) -> Table:
    """The few numbers the README quotes."""
    t = Table("Headline figures", f"{HEAD_CREDITS['lps']}; {HEAD_CREDITS['facecap']}; "
              f"{PHOTO_CREDITS}", ["figure", "value", "issue 9 target"])

    def get(*keys):
        v = figures
        for k in keys:
            if not isinstance(v, dict) or v.get(k) is None:
                return None
            v = v[k]
        return v

    for head in HEADS:
        m = get(f"pose_mae_{head}")
        if m:
            t.rows.append([f"head pose MAE yaw/pitch/roll, {head} (|yaw|<=60, |pitch|<=30, "
                           "|roll|<=45)", "/".join(_f(m[k]) for k in ("yaw", "pitch", "roll")),
                           "<= 3 each"])
        f = get(f"pose_summary_{head}", "frontal")
        if f:
            t.rows.append([f"frontal offset (geodesic), {head}", _f(f["geodesic"]), "<= 1.5"])
    for key, label, target in (("gaze_mae_head_yaw_+0", "combined gaze MAE, head yaw 0", "<= 5"),
                               ("gaze_mae_head_yaw_-30", "combined gaze MAE, head yaw -30",
                                "<= 5"),
                               ("gaze_mae_head_yaw_+30", "combined gaze MAE, head yaw +30",
                                "<= 5")):
        if get(key) is not None:
            t.rows.append([label, _f(get(key)), target])
    if get("render_mirror_bias", "combined") is not None:
        t.rows.append(["gaze mirror bias, renders (combined)",
                       _f(get("render_mirror_bias", "combined")), "<= 1"])
    for name in ("astronaut", "grace_hopper"):
        if get(f"photo_mirror_{name}", "combined") is not None:
            t.rows.append([f"gaze mirror bias, {name} photo (combined)",
                           _f(abs(get(f"photo_mirror_{name}", "combined"))), "<= 1"])
        if get(f"eye_contact_{name}", "angle") is not None:
            t.rows.append([f"eye contact, {name}: angle to camera ray",
                           _f(get(f"eye_contact_{name}", "angle")), "<= 5"])
    for coef in ("eye_blink_left", "eye_blink_right"):
        if get(f"closed_{coef}") is not None:
            t.rows.append([f"closed eye: {coef} / gaze confidence",
                           f"{_f(get(f'closed_{coef}', 'blink'), 2)} / "
                           f"{_f(get(f'closed_{coef}', 'confidence'), 2)}", ">= 0.8 / <= 0.3"])
    for coef in ("eye_blink_left", "eye_blink_right"):
        if get(f"own_eye_{coef}") is not None:
            t.rows.append([f"{coef}, tracked (against the person's own open eye): Pearson r, "
                           "monotone", f"{_f(get(f'own_eye_{coef}', 'r'), 2)}, "
                           f"{_f(get(f'own_eye_{coef}', 'monotone'))}", ">= 0.9, yes"])
    if get("blink_sequence", "closed_blink_min") is not None:
        t.rows.append(["two-frame blink, tracked (smoothing on): eye_blink_left / gaze "
                       "confidence on the closed frames",
                       f"{_f(get('blink_sequence', 'closed_blink_min'), 2)} / "
                       f"{_f(get('blink_sequence', 'closed_confidence_max'), 2)}",
                       ">= 0.8 / <= 0.3"])
    for coef in ("jaw_open", "mouth_smile_left"):
        if get(f"expression_{coef}") is not None:
            t.rows.append([f"{coef}: Pearson r, monotone",
                           f"{_f(get(f'expression_{coef}', 'r'), 2)}, "
                           f"{_f(get(f'expression_{coef}', 'monotone'))}", ">= 0.9, yes"])
    for hy, target in (("+0", "<= 6"), ("+30", "<= 8")):
        if get(f"nme68_head_yaw_{hy}") is not None:
            t.rows.append([f"NME68 (%), facecap, head yaw {hy}",
                           _f(100 * get(f"nme68_head_yaw_{hy}")), target])
    if get("neutral_max") is not None:
        t.rows.append(["neutral face: max coefficient", _f(get("neutral_max"), 2), "<= 0.15"])
    if get("tracked_neutral_max_yaw_+0") is not None:
        t.rows.append(["neutral face, tracked (against the person's own resting face): max "
                       "coefficient", _f(get("tracked_neutral_max_yaw_+0"), 2), "<= 0.15"])
    return t


# --------------------------------------------------------------------------------------------
# Program


def machine_line(device: str, backend: str = "") -> str:
    """One line naming the CPU, thread count, torch, the device and the network backend."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = ""
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = f", {torch.cuda.get_device_name(0)}"
    return (f"{cpu}, {os.cpu_count()} CPU(s), {torch.get_num_threads()} torch thread(s), "
            f"torch {torch.__version__}, device {device}{gpu}"
            + (f", networks on {backend}" if backend else ""))


def run(acc: Accuracy, plan: Plan, log=None) -> Tuple[List[Table], dict]:
    """Every table of ``plan`` and the figures behind them."""
    figures: dict = {}
    tables = pose_tables(acc, plan, figures, log)
    tables += gaze_tables(acc, plan, figures, log)
    tables += expression_tables(acc, plan, figures, log)
    tables.append(ibug68_table(acc, figures))
    tables += metric_tables(acc, plan, figures)
    tables += pupil_tables(acc, plan, figures)
    tables += condition_tables(acc, plan, figures, log)
    return [headline(figures)] + tables, figures


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point: render, read, print the tables (and write them on request)."""
    ap = argparse.ArgumentParser(
        prog="face3d-accuracy", description="Head pose, gaze and expression accuracy against "
        "renders of real head models with exact truth (a benchmark program; prints markdown).")
    ap.add_argument("--quick", action="store_true",
                    help="a small subset (about half a minute on 2 CPU cores)")
    ap.add_argument("--heads", default=None, metavar="DIR",
                    help="head models folder (default: $FACE3D_HEADS_DIR or ../shared/data/heads)")
    ap.add_argument("--device", default="cpu", help="engine device: cpu, cuda, cuda:N or auto")
    ap.add_argument("--json", default=None, metavar="OUT", help="write every raw row here")
    ap.add_argument("--out-md", default=None, metavar="FILE", help="write the tables here")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    from face3d_ros.tools.head_render import heads_dir

    try:
        heads = str(heads_dir(args.heads))
    except FileNotFoundError as exc:
        print(f"face3d-accuracy: {exc}", file=sys.stderr)
        return 2
    acc = Accuracy(heads, args.device, log)
    plan = QUICK if args.quick else FULL
    tables, figures = run(acc, plan, log)
    elapsed = time.perf_counter() - t0
    date = datetime.date.today().isoformat()
    machine = machine_line(acc.device, str(getattr(acc.engine, "backend", "")))
    stamp = f"{date}; {machine}"
    head = (f"## face3d-accuracy ({'quick' if args.quick else 'full'}), {date}\n\n"
            f"{WIDTH}x{HEIGHT}, {HFOV_DEG:.0f} deg horizontal FOV, outer eye corners "
            f"{EYE_CORNER_PX:.0f} px (face ~{EYE_CORNER_PX * FACE_PER_EYE_CORNERS:.0f} px) unless "
            f"stated, process_batch(refine_rois={REFINE_ROIS}). {acc.renders} renders in "
            f"{elapsed:.0f} s ({acc.render_s:.0f} s rendering, {acc.read_s:.0f} s face3d). "
            f"Machine: {machine}. Angles in degrees.\n")
    text = head + "\n" + "\n".join(t.markdown(stamp) for t in tables)
    print(text)
    if args.out_md:
        Path(args.out_md).write_text(text)
    if args.json:
        samples = [s.to_dict() for s in acc.cache.values()]
        photos = {k: [s.to_dict() for s in v] for k, v in acc.photos.items()}
        Path(args.json).write_text(json.dumps(_jsonable({
            "date": date, "machine": machine, "quick": args.quick, "seconds": elapsed,
            "settings": {"width": WIDTH, "height": HEIGHT, "hfov_deg": HFOV_DEG,
                         "eye_corner_px": EYE_CORNER_PX, "refine_rois": REFINE_ROIS},
            "figures": figures, "samples": samples, "photos": photos}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
