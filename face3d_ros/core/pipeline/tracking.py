"""Tracking over an image stream: persistent ids, ROIs carried between frames, smoothing.

Per frame (:meth:`FaceTracker.process`):

1. the detector runs when there are no tracks, when a track was lost on the last frame, or
   every ``detect_every_n`` frames; otherwise each track's ROI comes from its last landmarks.
   The detector's tiles for small faces (``EngineConfig.min_face_px``) go with the whole
   image whenever it runs, in the same batch: every tile is scanned once per N frames, so a
   new face appears within N frames (spreading the tiles round robin over the frames in
   between cost more, +12 % against +5-9 % at 640x480 with one face: a detector call per
   frame); faces beyond ``max_faces`` tracks are not started and are counted;
2. detections are matched to tracks by box IoU (optimal assignment); unmatched detections
   start tentative tracks;
3. landmarks for every track's ROI in one batch; a track whose face flag falls below
   ``min_presence`` is missed (and dropped after ``max_missed`` frames);
4. a tentative track gets its persistent id after ``min_hits`` consecutive frames; until then
   its face is reported with id -1 (nothing is hidden); a track whose landmark-aligned face
   thumbnail no longer resembles the last frame's (``min_appearance``) is another person and
   starts over as a new track;
5. One-Euro filtering of each track's landmarks; metric 3D, pose and gaze follow from them;
   the expression's eye openness comes from the landmarks before the filter (a blink lasts a
   few frames; the filter, tuned for pose and gaze, smeared a two-frame blink over eight), and
   each track learns its person's own neutral (``expression.OwnNeutral``: their open eye and
   their resting face), against which its expression is measured.

A frame whose size differs from the previous frame's starts a new stream: its tracks end (a
track's ROI and box are pixels of the old frame and would land on other faces or nowhere)
and the detector runs; ids keep counting, so an id never names two people.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

import numpy as np
import torch

from ..config import TrackerConfig
from .engine import FaceEngine
from .expression import OwnNeutral
from .geometry import boxes_from_landmarks
from .landmarks import crop_rois, roi_from_detection, roi_from_landmarks
from ..types import CameraIntrinsics, FrameResult, Roi


#: Side (px) of the face thumbnails compared between frames (appearance check).
THUMBNAIL_SIZE = 32


class OneEuroFilter:
    """One-Euro low-pass filter (Casiez, Roussel, Vogel, CHI 2012) over arrays of any shape.

    Its cutoff rises with the speed of the signal: still faces are smoothed hard, moving ones
    follow without lag. min_cutoff_hz, d_cutoff_hz in Hz; beta in 1/(signal unit).
    """

    def __init__(self, min_cutoff_hz: float, beta: float, d_cutoff_hz: float) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff_hz, beta, d_cutoff_hz
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None
        self._t = 0.0

    @staticmethod
    def _alpha(dt: float, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2.0 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filtered value of sample ``x`` taken at time ``t`` (seconds)."""
        if self._x is None or self._dx is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x
        dt = max(t - self._t, 1e-3)
        dx = (x - self._x) / dt
        a_d = self._alpha(dt, self.d_cutoff)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        a = self._alpha(dt, self.min_cutoff + self.beta * np.abs(self._dx))
        self._x = a * x + (1.0 - a) * self._x
        self._t = t
        return self._x


@dataclass
class _Track:
    key: int
    roi: Roi
    box: np.ndarray
    score: float
    hits: int = 0
    missed: int = 0
    track_id: int = -1
    smoother: Optional[OneEuroFilter] = None
    thumbnail: Optional[np.ndarray] = None
    thumbnail_size: float = 0.0
    own: OwnNeutral = field(default_factory=OwnNeutral)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of boxes a (A, 4) and b (B, 4), x_min, y_min, x_max, y_max."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


class FaceTracker:
    """Stateful per-stream processing with persistent face ids (one camera, one tracker)."""

    def __init__(self, engine: FaceEngine, config: TrackerConfig = TrackerConfig()) -> None:
        self.engine = engine
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (ids restart at 1)."""
        self._tracks: List[_Track] = []
        self._next_key = 0
        self._next_id = 1
        self._frame = 0
        self._force_detect = True
        self._size: Optional[tuple] = None

    def _new_stream(self) -> None:
        """End every track (the frame size changed); ids are not reused."""
        self._tracks = []
        self._frame = 0
        self._force_detect = True

    def process(self, image: np.ndarray, intrinsics: Optional[CameraIntrinsics] = None,
                stamp: Optional[float] = None) -> FrameResult:
        """Faces of the next frame of the stream. stamp: seconds (for smoothing; defaults to
        the wall clock)."""
        eng, cfg = self.engine, self.config
        timings: Dict[str, float] = {}
        t_start = time.perf_counter()
        stamp = time.monotonic() if stamp is None else float(stamp)
        with eng.stage(timings, "upload"):
            tensor = eng.to_tensor(image)
        intr = eng.intrinsics_for(tensor, intrinsics)
        size = (int(tensor.shape[2]), int(tensor.shape[1]))  # (W, H)
        if size != self._size:
            if self._size is not None:
                self._new_stream()
            self._size = size

        run_detector = (self._force_detect or not self._tracks
                        or self._frame % cfg.detect_every_n == 0)
        dropped, scanned = 0, 0
        if run_detector:  # the tiles go with the whole image, in one batch
            with eng.stage(timings, "detect"):
                with torch.inference_mode():
                    found = eng.detector.detect_frames([tensor])
            dropped += found.dropped[0] + self._associate(found.faces[0])
            scanned += found.tiles[0]
        self._frame += 1

        faces = []
        self._force_detect = False
        if self._tracks:
            rois, presence, raw = self._landmarks(tensor, list(self._tracks), timings)
            lost = presence < eng.config.min_presence
            if not run_detector and lost.any():
                # A face was lost between detector runs (it left, or the scene cut): detect on
                # this very frame, then redo the landmarks of all tracks in one batch (rare, and
                # simpler than merging two partial batches).
                run_detector = True
                with eng.stage(timings, "detect"):
                    with torch.inference_mode():
                        found = eng.detector.detect_frames([tensor])
                dropped = found.dropped[0] + self._associate(
                    found.faces[0], lost_now={int(i) for i in np.flatnonzero(lost)})
                scanned += found.tiles[0]
                rois, presence, raw = self._landmarks(tensor, list(self._tracks), timings)
            alive: List[int] = []
            for i, tr in enumerate(self._tracks):
                if presence[i] < eng.config.min_presence:
                    tr.missed += 1
                    tr.hits = 0 if tr.track_id < 0 else tr.hits
                    self._force_detect = True
                    continue
                tr.missed = 0
                tr.hits += 1
                tr.roi = roi_from_landmarks(raw[i])
                tr.box = boxes_from_landmarks(raw[i][None])[0]
                if not run_detector:
                    tr.score = float(presence[i])
                if tr.track_id < 0 and tr.hits >= cfg.min_hits:
                    tr.track_id, self._next_id = self._next_id, self._next_id + 1
                alive.append(i)
            alive = self._suppress_duplicates(alive)
            if cfg.min_appearance > 0.0 and alive:
                self._check_appearance(tensor, alive)
            smoothed = []
            for i in alive:
                tr = self._tracks[i]
                if cfg.smoothing:
                    if tr.smoother is None:
                        tr.smoother = OneEuroFilter(cfg.min_cutoff_hz, cfg.beta, cfg.d_cutoff_hz)
                    smoothed.append(tr.smoother(raw[i], stamp))
                else:
                    smoothed.append(raw[i])
            if alive:
                # Host arrays: the landmarks left the device once, in _landmarks.
                with eng.stage(timings, "geometry"):
                    faces = eng.build_faces(
                        np.stack(smoothed), presence[alive], [intr] * len(alive),
                        [rois[i] for i in alive],
                        [self._tracks[i].score for i in alive],
                        [self._tracks[i].track_id for i in alive],
                        [self._tracks[i].own for i in alive],
                        raw[alive] if cfg.smoothing else None)
            self._tracks = [t for t in self._tracks if t.missed <= cfg.max_missed]
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        faces.sort(key=lambda f: (f.track_id < 0, f.track_id))
        return FrameResult(faces=tuple(faces), image_size=(int(tensor.shape[2]),
                                                           int(tensor.shape[1])),
                           intrinsics=intr, timings_ms=timings, detector_ran=run_detector,
                           stamp=stamp, detector_tiles=scanned, faces_dropped=dropped)

    def _check_appearance(self, tensor: torch.Tensor, alive: List[int]) -> None:
        """Give a track whose face changed identity (appearance) a fresh start.

        The thumbnail is a 32x32 grey crop aligned on the face's own landmarks, normalised to
        zero mean and unit variance, so pose, position, size and lighting barely change it
        (same person: correlation 0.88-0.99 measured on rotated, shifted, darkened, scaled and
        blurred photos; two different people: 0.36).
        """
        rois = [self._tracks[i].roi for i in alive]
        crops, _ = crop_rois([tensor], [0] * len(rois), rois, THUMBNAIL_SIZE)
        grey = crops.mean(1).reshape(len(rois), -1).double().cpu().numpy()  # (T, 1024)
        grey = (grey - grey.mean(1, keepdims=True)) / (grey.std(1, keepdims=True) + 1e-6)
        for k, i in enumerate(alive):
            tr = self._tracks[i]
            # Compare like with like: only thumbnails cut at nearly the same ROI size (a face
            # whose landmarks are still settling, e.g. just after a change, is not judged).
            comparable = (tr.thumbnail is not None
                          and abs(tr.roi.size / max(tr.thumbnail_size, 1e-6) - 1.0) < 0.1)
            if comparable and float(np.mean(tr.thumbnail * grey[k])) < self.config.min_appearance:
                # Another person in the same place: end the old track, start a new one here.
                fresh = _Track(key=self._next_key, roi=tr.roi, box=tr.box, score=tr.score,
                               hits=1)
                self._next_key += 1
                if fresh.hits >= self.config.min_hits:
                    fresh.track_id, self._next_id = self._next_id, self._next_id + 1
                self._tracks[i] = fresh
                tr = fresh
            tr.thumbnail, tr.thumbnail_size = grey[k], tr.roi.size

    def _landmarks(self, tensor: torch.Tensor, tracks: List[_Track], timings: Dict[str, float]
                   ) -> tuple:
        """Landmarks of ``tracks`` on one image: (rois, presence (T,) numpy, landmarks
        (T, 478, 3) numpy px), copied off the device once."""
        rois = [t.roi for t in tracks]
        with self.engine.stage(timings, "landmarks"):
            batch = self.engine.landmarks([tensor], [0] * len(rois), rois)
        return (rois, batch.presence.float().cpu().numpy(),
                batch.landmarks.float().cpu().numpy())

    def _associate(self, dets: list, lost_now: Optional[Set[int]] = None) -> int:
        """Match detections to tracks by IoU; start tentative tracks for the rest, up to
        ``max_faces`` tracks in all (best scores first); returns how many were not started.

        A matched track that is lost (missed on earlier frames, or in ``lost_now``) restarts
        from its detection's ROI."""
        from scipy.optimize import linear_sum_assignment

        matched_dets = set()
        if self._tracks and dets:
            iou = box_iou(np.stack([t.box for t in self._tracks]),
                          np.stack([d.box for d in dets]))
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.config.match_iou:
                    matched_dets.add(c)
                    self._tracks[r].score = dets[c].score
                    if self._tracks[r].missed > 0 or r in (lost_now or ()):
                        # re-acquire a lost face from its detection
                        self._tracks[r].roi = roi_from_detection(dets[c])
        room = self.engine.config.max_faces - len(self._tracks)
        dropped = 0
        for j, d in enumerate(dets):  # best score first
            if j not in matched_dets and room <= 0:
                dropped += 1
            elif j not in matched_dets:
                room -= 1
                self._tracks.append(_Track(key=self._next_key, roi=roi_from_detection(d),
                                           box=np.asarray(d.box, dtype=np.float64),
                                           score=d.score))
                self._next_key += 1
        return dropped

    def _suppress_duplicates(self, alive: List[int]) -> List[int]:
        """Drop the younger of two live tracks that converged onto the same face."""
        if len(alive) < 2:
            return alive
        boxes = np.stack([self._tracks[i].box for i in alive])
        iou = box_iou(boxes, boxes)
        order = sorted(range(len(alive)), key=lambda k: (self._tracks[alive[k]].track_id < 0,
                                                         self._tracks[alive[k]].key))
        kept: List[int] = []
        for k in order:
            if all(iou[k, j] < 0.5 for j in kept):
                kept.append(k)
            else:
                self._tracks[alive[k]].missed = self.config.max_missed + 1  # remove it
        return [alive[k] for k in sorted(kept)]
