"""Evaluation metrics of a processed image stream: latency, tracking, jitter, angle errors.

Pure numpy over plain per-frame samples, so the same code scores an offline run, a live run
through the node or a results bag read back. Definitions:

* **latency**: per stage, count, mean, p50, p95, p99 and max of milliseconds per frame;
* **track_count**: distinct confirmed ids (>= 0);
* **id_switches**: a confirmed face whose box overlaps (IoU >= ``iou_min``) a confirmed face of
  the previous frame carrying a different id (not counted across a scene cut);
* **ids_across_cuts**: confirmed ids present on both sides of a scene cut (the tracker kept an
  id on a different scene, so most likely on a different person);
* **fragmentation**: for every id, the number of times it disappears and comes back later
  (gaps in its presence), summed over ids;
* **jitter**: on still segments (runs of identical input frames), after the first frame of the
  segment, per id present in every frame from its first appearance on (at least 3 frames),
  the standard deviation over frames of the 2D landmarks (px, RMS over points), of head
  yaw/pitch/roll and of combined gaze yaw/pitch (degrees); mean and max over segments;
* **angle errors**: absolute differences wrapped to [0, 180] degrees: mean, median, p95, max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Angle channels of a :class:`FaceSample`, in degrees.
ANGLES = ("yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch")


@dataclass(frozen=True)
class FaceSample:
    """What the metrics need of one face in one frame.

    track_id: persistent id (-1 untracked). box: (4,) x_min, y_min, x_max, y_max px.
    landmarks_2d: (478, 2) px or None. yaw, pitch, roll: head angles, degrees;
    gaze_yaw, gaze_pitch: combined gaze angles, degrees (conventions of ``core.types``).
    """

    track_id: int
    box: np.ndarray
    yaw: float
    pitch: float
    roll: float
    gaze_yaw: float
    gaze_pitch: float
    landmarks_2d: Optional[np.ndarray] = None


def summary(values: Sequence[float] | np.ndarray) -> Dict[str, Optional[float]]:
    """count, mean, p50, p95, p99, max of finite values (None entries when there are none)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {"count": int(v.size), "mean": float(v.mean()), "p50": float(p50),
            "p95": float(p95), "p99": float(p99), "max": float(v.max())}


def latency(per_frame: Sequence[Dict[str, float]]) -> Dict[str, Dict[str, Optional[float]]]:
    """Stage name -> :func:`summary` of its milliseconds over the frames that have it."""
    stages: Dict[str, List[float]] = {}
    for timings in per_frame:
        for name, ms in timings.items():
            stages.setdefault(name, []).append(float(ms))
    return {name: summary(ms) for name, ms in sorted(stages.items())}


def wrap_deg(diff: np.ndarray | float) -> np.ndarray:
    """Angle differences wrapped to (-180, 180] degrees."""
    d = np.asarray(diff, dtype=np.float64)
    return -((-d + 180.0) % 360.0 - 180.0)


def angle_errors(estimate: Sequence[float] | np.ndarray,
                 truth: Sequence[float] | np.ndarray) -> Dict[str, Optional[float]]:
    """mean, median, p95, max (and count) of |estimate - truth| in degrees, wrapped.

    estimate, truth: (N,) degrees; pairs with a NaN on either side are left out.
    """
    e = np.asarray(estimate, dtype=np.float64).reshape(-1)
    t = np.asarray(truth, dtype=np.float64).reshape(-1)
    if e.shape != t.shape:
        raise ValueError(f"estimate has {e.size} values but truth has {t.size}")
    err = np.abs(wrap_deg(e - t))
    err = err[np.isfinite(err)]
    if err.size == 0:
        return {"count": 0, "mean": None, "median": None, "p95": None, "max": None}
    return {"count": int(err.size), "mean": float(err.mean()), "median": float(np.median(err)),
            "p95": float(np.percentile(err, 95)), "max": float(err.max())}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes (4,) x_min, y_min, x_max, y_max."""
    lt = np.maximum(a[:2], b[:2])
    rb = np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0.0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def tracking(frames: Sequence[Sequence[FaceSample]], cuts: Optional[Sequence[bool]] = None,
             iou_min: float = 0.5) -> Dict[str, int]:
    """track_count, id_switches, fragmentation, ids_across_cuts, untracked_faces (id -1).

    frames: faces per frame. cuts: (N,) True where frame i does not continue frame i-1 (a
    different scene); switches are not counted across a cut.
    """
    cut = np.zeros(len(frames), bool) if cuts is None else np.asarray(cuts, bool)
    if cut.shape != (len(frames),):
        raise ValueError(f"{len(frames)} frames but {cut.size} cut flags")
    ids_seen: Dict[int, List[int]] = {}
    switches = 0
    untracked = 0
    for i, faces in enumerate(frames):
        for f in faces:
            if f.track_id < 0:
                untracked += 1
                continue
            ids_seen.setdefault(f.track_id, []).append(i)
            if i == 0 or cut[i]:
                continue
            for g in frames[i - 1]:
                if g.track_id >= 0 and g.track_id != f.track_id and \
                        box_iou(np.asarray(f.box, float), np.asarray(g.box, float)) >= iou_min:
                    switches += 1
                    break
    across = 0
    for k in (int(c) for c in np.flatnonzero(cut)):
        if k > 0:
            before = {f.track_id for f in frames[k - 1] if f.track_id >= 0}
            across += len(before & {f.track_id for f in frames[k] if f.track_id >= 0})
    fragments = 0
    for idx in ids_seen.values():
        present = np.unique(idx)
        fragments += int(np.count_nonzero(np.diff(present) > 1))
    return {"track_count": len(ids_seen), "id_switches": switches,
            "fragmentation": fragments, "ids_across_cuts": across,
            "untracked_faces": untracked}


def still_segments(still: Sequence[bool], min_frames: int = 3) -> List[Tuple[int, int]]:
    """[start, stop) frame ranges of identical input, at least ``min_frames`` long.

    still: (N,) True where frame i shows the same image as frame i-1 (still[0] is ignored).
    """
    s = np.asarray(still, bool)
    segments = []
    start = 0
    for i in range(1, len(s) + 1):
        if i == len(s) or not s[i]:
            if i - start >= min_frames:
                segments.append((start, i))
            start = i
    return segments


def jitter(frames: Sequence[Sequence[FaceSample]], segments: Sequence[Tuple[int, int]],
           settle: int = 1, min_frames: int = 3) -> Dict[str, object]:
    """Jitter of landmarks (px) and angles (deg) over still segments (see the module docstring).

    The first ``settle`` frames of a segment are left out (a new image: the tracker is still
    converging there, which is lag, not jitter). An id is scored on a segment when it is present
    in every remaining frame from its first appearance on, for at least ``min_frames`` frames.
    Returns {"segments": number used, "samples": (segment, id) pairs, and per channel
    ("landmarks_px", "yaw", "pitch", "roll", "gaze_yaw", "gaze_pitch") {"mean", "max"} of the
    per-pair standard deviations (None when no pair qualified)}.
    """
    stds: Dict[str, List[float]] = {k: [] for k in ("landmarks_px",) + ANGLES}
    used = 0
    for start, stop in segments:
        per_id: Dict[int, List[Tuple[int, FaceSample]]] = {}
        for i in range(start + settle, stop):
            for f in frames[i]:
                if f.track_id >= 0:
                    per_id.setdefault(f.track_id, []).append((i, f))
        seg_used = False
        for pairs in per_id.values():
            first = pairs[0][0]
            if len(pairs) < min_frames or len(pairs) != stop - first:
                continue  # too short, or the id is missing from a frame after it appeared
            samples = [f for _, f in pairs]
            seg_used = True
            for k in ANGLES:
                vals = np.array([getattr(f, k) for f in samples])
                vals = vals[0] + wrap_deg(vals - vals[0])
                stds[k].append(float(vals.std()))
            if all(f.landmarks_2d is not None for f in samples):
                lm = np.stack([np.asarray(f.landmarks_2d)[:, :2] for f in samples])  # (T, P, 2)
                stds["landmarks_px"].append(float(np.sqrt(lm.var(axis=0).sum(-1).mean())))
        used += int(seg_used)
    out: Dict[str, object] = {"segments": used, "samples": len(stds["yaw"])}
    for k, v in stds.items():
        out[k] = ({"mean": float(np.mean(v)), "max": float(np.max(v))} if v
                  else {"mean": None, "max": None})
    return out


def faces_dropped(per_frame: Sequence[Optional[int]]) -> Optional[Dict[str, int]]:
    """Faces beyond ``max_faces`` (found but not processed): total and frames with any; None
    where the frames do not say (the node's messages carry the count on /diagnostics only)."""
    known = [int(n) for n in per_frame if n is not None]
    if not known:
        return None
    return {"total": int(sum(known)), "frames": int(sum(1 for n in known if n > 0))}


def faces_per_frame(frames: Sequence[Sequence[FaceSample]]) -> Dict[str, object]:
    """Faces per frame: mean, max, histogram {count: frames} and share of frames with a face."""
    n = np.array([len(f) for f in frames], dtype=np.int64)
    if n.size == 0:
        return {"mean": None, "max": None, "histogram": {}, "share_with_face": None}
    values, counts = np.unique(n, return_counts=True)
    return {"mean": float(n.mean()), "max": int(n.max()),
            "histogram": {str(int(v)): int(c) for v, c in zip(values, counts)},
            "share_with_face": float(np.mean(n > 0))}
