"""The engine: images in, :class:`~face3d_ros.core.types.FrameResult` out, batched end to end.

Steps of :meth:`FaceEngine.process_batch` (all faces of all images go through one forward per
network):

1. each image -> one (3, H, W) float tensor on the device (:meth:`FaceEngine.to_tensor`);
2. face detection, both ranges, the whole image and tiles for small faces (``min_face_px``),
   weighted NMS (``core.pipeline.detection``); faces beyond ``max_faces`` counted, not processed;
3. rotated face ROIs -> one batched warp -> face mesh -> eye ROIs -> iris
   (``core.pipeline.landmarks``);
4. metric 3D, head pose and gaze for all faces at once (``core.pipeline.geometry``);
5. one copy to the host, expression coefficients, frozen results.

Tracking over a stream (ROIs carried from the previous frame, persistent ids, smoothing) is
:class:`face3d_ros.core.pipeline.tracking.FaceTracker`, built on the same stages.

Backends (``EngineConfig.backend``, :func:`face3d_ros.core.pipeline.models.resolve_backend`):
torch on CUDA, Google's LiteRT on the CPU by default. On the CPU the image stays a numpy view
(no float copy of the frame) and crops are OpenCV warps fed to the networks in NHWC (the host
path of ``core.pipeline.detection`` and ``core.pipeline.landmarks``), with either backend.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from scipy.spatial.transform import Rotation

from .canonical import load_canonical
from ..config import EngineConfig
from .detection import FaceDetector
from .expression import (EXPRESSION_NAMES, OwnNeutral, coefficients_from_measures, measures,
                         observe_own, stored_neutral)
from .geometry import (FaceGeometry, boxes_from_landmarks, direction_angles,
                       euler_from_rotation, eye_open_confidence, eye_openness, pose_weights,
                       solve_faces)
from .landmarks import LandmarkBatch, LandmarkRunner, roi_from_detection, roi_from_landmarks
from .models import (DEFAULT_THREADS, FaceModels, LiteRTModels, load_face_models,
                     resolve_backend, resolve_device)
from ..types import (CameraIntrinsics, Detection, Expression, FaceResult, FrameResult, Gaze,
                     GazeRay, HeadPose, Roi)

#: Weighted pose-fit residual (metres, at canonical size) at which pose confidence reaches 0.
POSE_RMSE_ZERO_CONF_M = 0.008


def _host64(values: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """``values`` as a float64 numpy array on the host (one copy off the device for a tensor)."""
    if isinstance(values, torch.Tensor):
        return values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


class FaceEngine:
    """Detection, dense landmarks, metric 3D, head pose, gaze and expression for many faces.

    config: :class:`EngineConfig`. models: already loaded networks (else loaded from
    ``config.model_dir``; a missing file raises ``ModelNotFoundError`` naming the fix); given
    models keep their own backend and device.
    ``device_warning`` is a message for the caller to log, or None: CUDA was requested but is
    absent (CPU is used), or the backend differs from the one asked for (LiteRT not installed,
    or LiteRT asked for with a CUDA device). ``backend`` is the backend in use.
    """

    def __init__(self, config: EngineConfig = EngineConfig(),
                 models: Optional[Union[FaceModels, LiteRTModels]] = None) -> None:
        self.config = config
        if models is None:
            device, dev_warning = resolve_device(config.device)
            backend, device, be_warning = resolve_backend(config.backend, device)
            which = {"short": ("short",), "full": ("full",),
                     "both": ("short", "full")}[config.detector]
            models = load_face_models(config.model_dir, device, which=which + ("mesh", "iris"),
                                      backend=backend, threads=config.threads)
            warns = [w for w in (dev_warning, be_warning) if w]
            models.warning = "; ".join(warns) if warns else None  # kept for engines sharing them
        self.device_warning: Optional[str] = models.warning
        self.models = models
        self.device = models.device
        self.backend = models.backend
        # torch's process-wide CPU threads: the networks' count with torch; one with LiteRT,
        # where torch only runs small tensor ops and its thread pool, contending with LiteRT's
        # for the same cores, made them 10-30x slower (docs/models.md).
        torch.set_num_threads(1 if self.backend == "litert"
                              else config.threads or DEFAULT_THREADS)
        self.detector = FaceDetector(models, config)
        self.landmarker = LandmarkRunner(models, config)
        self._canonical_arrays: Optional[tuple] = None  # loaded on first use
        self.profile = False  # synchronise the device around stages for exact stage timings

    # -- input ---------------------------------------------------------------------------
    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(3, H, W) RGB in 0..255 on the device from an (H, W[, C]) image array.

        Accepts uint8 or uint16 (scaled to 8 bit) or float in [0, 1]; 1 (gray), 3 (RGB) or
        4 (RGBA, alpha ignored) channels. Raises ValueError saying what is wrong otherwise.
        On CUDA the result is float32. On the CPU a uint8 RGB image comes back as a uint8 view
        of the caller's memory (no copy; gray and RGBA are converted to RGB once), other types
        as float32 in (H, W, 3) memory: the host path reads both without copying.
        """
        img = np.asarray(image)
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape "
                             f"{img.shape}")
        if img.shape[0] == 0 or img.shape[1] == 0:
            raise ValueError(f"empty image of size {img.shape[1]}x{img.shape[0]}")
        if img.dtype == np.uint8:
            scale = 1.0
        elif img.dtype == np.uint16:
            scale = 255.0 / 65535.0
        elif img.dtype in (np.float32, np.float64):
            scale = 255.0
        else:
            raise ValueError(f"unsupported pixel type {img.dtype}; use uint8, uint16 or float")
        if self.device.type == "cpu":
            return self._host_tensor(img, scale)
        img = np.ascontiguousarray(img)
        if not img.flags.writeable:  # e.g. a ROS message buffer; torch needs writable memory
            img = img.copy()
        t = torch.from_numpy(img).to(self.device, non_blocking=True)
        t = t.permute(2, 0, 1)[:3].float()
        if scale != 1.0:
            t = t * scale
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        return t

    @staticmethod
    def _host_tensor(img: np.ndarray, scale: float) -> torch.Tensor:
        """CPU branch of :meth:`to_tensor`: a (3, H, W) view of (H, W, 3) memory."""
        if img.dtype == np.uint8:
            if img.shape[2] == 1:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            elif img.shape[2] == 4:
                img = cv2.cvtColor(img, cv2.COLOR_RGBA2RGB)
            img = np.ascontiguousarray(img)
        else:
            img = np.ascontiguousarray(np.broadcast_to(
                img[..., :3].astype(np.float32) * np.float32(scale),
                img.shape[:2] + (3,)))
        if not img.flags.writeable:
            # A read-only buffer (e.g. a ROS message): only ever read (crops, resizes), so it
            # is viewed, not copied (torch warns, once per process, about writes that never
            # happen).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(img).permute(2, 0, 1)
        return torch.from_numpy(img).permute(2, 0, 1)

    # -- stages --------------------------------------------------------------------------
    @contextmanager
    def stage(self, timings: Dict[str, float], name: str) -> Iterator[None]:
        """Time the ``with`` block into ``timings[name]`` (milliseconds, added up when a stage
        runs more than once). With ``profile`` on CUDA the device is synchronised around the
        block, so the time is the stage's own and not that of queued work."""
        if self.profile and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        yield
        if self.profile and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1e3

    def detect(self, tensors: Sequence[torch.Tensor]) -> List[List[Detection]]:
        """Faces per image, for images from :meth:`to_tensor`."""
        with torch.inference_mode():
            return self.detector.detect_batch(tensors)

    def landmarks(self, tensors: Sequence[torch.Tensor], image_index: Sequence[int],
                  rois: Sequence[Roi]) -> LandmarkBatch:
        """Dense landmarks for every ROI (``image_index[i]`` says which image ROI i is in)."""
        idx = torch.as_tensor(list(image_index), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            return self.landmarker.run(tensors, idx, list(rois))

    def solve(self, landmarks: np.ndarray, intrinsics: np.ndarray) -> FaceGeometry:
        """Metric geometry (host numpy, float64) for (N, 478, 3) landmarks px; intrinsics
        (N, 4) fx, fy, cx, cy px."""
        if self._canonical_arrays is None:
            canonical = load_canonical()
            self._canonical_arrays = tuple(
                np.asarray(a, np.float64) for a in (
                    canonical.vertices, pose_weights(), canonical.eyeball_centres,
                    canonical.gaze_follow, canonical.pose_deformation))
        can, weights, eyeballs, follow, deformation = self._canonical_arrays
        return solve_faces(landmarks, intrinsics, can, weights, eyeballs,
                           self.config.iris_diameter_m, follow, deformation)

    def intrinsics_for(self, image: np.ndarray | torch.Tensor,
                       intrinsics: Optional[CameraIntrinsics]) -> CameraIntrinsics:
        """The given intrinsics, or ones from the default field of view (flagged assumed)."""
        if isinstance(image, torch.Tensor):
            h, w = int(image.shape[-2]), int(image.shape[-1])
        else:
            h, w = np.asarray(image).shape[:2]
        if intrinsics is not None:
            return intrinsics
        return CameraIntrinsics.from_fov(w, h, self.config.default_hfov_deg)

    # -- assembly ------------------------------------------------------------------------
    def build_faces(self, landmarks: Union[torch.Tensor, np.ndarray],
                    presence: Union[torch.Tensor, np.ndarray],
                    intrinsics: Sequence[CameraIntrinsics], rois: Sequence[Roi],
                    scores: Sequence[float], track_ids: Sequence[int],
                    own: Optional[Sequence[OwnNeutral]] = None,
                    raw_landmarks: Optional[np.ndarray] = None) -> List[FaceResult]:
        """Frozen per-face results for N faces.

        landmarks: (N, 478, 3) image px (possibly smoothed); presence: (N,) face flags; each
        a numpy array or a tensor on any device (copied to the host once, for the geometry);
        intrinsics/rois/scores/track_ids: one per face. own: one per face, each person's own
        neutral (a track's open eye and resting face), fed this frame's measures and the
        expression measured against it.
        raw_landmarks: (N, 478, 3) px, the same landmarks before smoothing: the expression's
        eye openness is read from them, and an eye closed in them has no gaze confidence (a
        blink lasts 3-12 frames at 30 Hz; the landmark filter, tuned for pose and gaze, lags
        it: a 2-frame blink peaked at 0.68 through it and its gaze kept full confidence).
        One host synchronisation for the whole batch (none for numpy inputs).
        """
        n = landmarks.shape[0]
        if n == 0:
            return []
        k = np.array([[c.fx, c.fy, c.cx, c.cy] for c in intrinsics], dtype=np.float64)
        lm, flags = _host64(landmarks), _host64(presence)  # the frame's one copy off the device
        geo = self.solve(lm, k)
        host = {name: getattr(geo, name)
                for name in ("points", "face_points", "rotation", "translation", "scale",
                             "fit_rmse", "eye_origin", "eye_direction", "eye_confidence",
                             "eye_visibility", "eye_openness")}
        rot, t, s = host["rotation"], host["translation"], host["scale"]
        angles = euler_from_rotation(rot, t)  # (N, 3) yaw, pitch, roll
        openness = host["eye_openness"]
        if raw_landmarks is not None:
            openness = eye_openness(raw_landmarks)
            host["eye_confidence"] = host["eye_visibility"] * eye_open_confidence(
                np.minimum(host["eye_openness"], openness))
        if own is not None and len(own) != n:
            raise ValueError(f"{n} faces but {len(own)} own neutrals; give one per face")
        m = measures(host["face_points"], openness)
        own_eyes, own_face = (None, None) if own is None else observe_own(
            own, m, angles[:, 0], angles[:, 1])
        expr = coefficients_from_measures(m, stored_neutral(), own_eyes, own_face)
        boxes = boxes_from_landmarks(lm)
        fit_conf = np.clip(1.0 - host["fit_rmse"] / s / POSE_RMSE_ZERO_CONF_M, 0.0, 1.0)
        # Gaze of all faces at once: per eye, then both eyes weighted by their confidence
        # (the head direction, with zero confidence, where both eyes are unusable).
        conf, dirs, origins = host["eye_confidence"], host["eye_direction"], host["eye_origin"]
        eye_angles = direction_angles(dirs.reshape(-1, 3), origins.reshape(-1, 3)
                                      ).reshape(n, 2, 2)  # yaw, pitch per eye
        comb = (conf[..., None] * dirs).sum(1)  # (N, 3)
        usable = conf.sum(1) > 1e-6
        comb = np.where(usable[:, None],
                        comb / np.maximum(np.linalg.norm(comb, axis=1, keepdims=True), 1e-300),
                        rot[:, :, 0])
        comb_origin = origins.mean(1)  # (N, 3)
        comb_angles = direction_angles(comb, comb_origin)  # (N, 2)
        comb_conf = conf.mean(1)
        pose_conf = flags * fit_conf
        lm32, pts32 = lm.astype(np.float32), host["points"].astype(np.float32)
        quats = Rotation.from_matrix(rot).as_quat()  # (N, 4) x, y, z, w; one call per frame

        faces = []
        for i in range(n):
            rays = [GazeRay(origins[i, e], dirs[i, e], float(eye_angles[i, e, 0]),
                            float(eye_angles[i, e, 1]), float(conf[i, e])) for e in range(2)]
            combined = GazeRay(comb_origin[i], comb[i], float(comb_angles[i, 0]),
                               float(comb_angles[i, 1]), float(comb_conf[i]))
            pose = HeadPose(rotation=rot[i], translation=t[i], yaw=float(angles[i, 0]),
                            pitch=float(angles[i, 1]), roll=float(angles[i, 2]),
                            confidence=float(pose_conf[i]), quaternion=quats[i])
            faces.append(FaceResult(
                track_id=int(track_ids[i]), score=float(scores[i]),
                presence=float(flags[i]), box=boxes[i], landmarks_2d=lm32[i],
                landmarks_3d=pts32[i], head_pose=pose,
                gaze=Gaze(left=rays[1], right=rays[0], combined=combined),
                expression=Expression(EXPRESSION_NAMES, expr[i]), roi=rois[i]))
        return faces

    # -- one-shot API --------------------------------------------------------------------
    def process_batch(self, images: Sequence[np.ndarray],
                      intrinsics: Optional[Sequence[Optional[CameraIntrinsics]]] = None,
                      refine_rois: int = 0) -> List[FrameResult]:
        """All faces of all images, detection on every image, no tracking (ids are -1).

        images: RGB arrays (see :meth:`to_tensor`). intrinsics: one per image or None
        (default field of view, flagged ``assumed``). refine_rois: extra landmark passes, each
        on the crop placed by the last pass's landmarks, as the tracker places it on a video:
        the landmarks of a still image then match those of the same face tracked (one pass is
        enough; each costs one more mesh and iris forward).
        """
        timings: Dict[str, float] = {}
        t_start = time.perf_counter()
        intr_in = list(intrinsics) if intrinsics is not None else [None] * len(images)
        if len(intr_in) != len(images):
            raise ValueError(f"{len(images)} images but {len(intr_in)} intrinsics")
        with self.stage(timings, "upload"):
            tensors = [self.to_tensor(im) for im in images]
        intr = [self.intrinsics_for(t, c) for t, c in zip(tensors, intr_in)]
        with self.stage(timings, "detect"):
            with torch.inference_mode():
                found = self.detector.detect_frames(tensors)
        dets = found.faces
        image_index = [i for i, d in enumerate(dets) for _ in d]
        flat = [d for ds in dets for d in ds]
        rois = [roi_from_detection(d) for d in flat]
        faces: List[FaceResult] = []
        if flat:
            with self.stage(timings, "landmarks"):
                batch = self.landmarks(tensors, image_index, rois)
                for _ in range(refine_rois):
                    lm_host = batch.landmarks.float().cpu().numpy()
                    rois = [roi_from_landmarks(lm) for lm in lm_host]
                    batch = self.landmarks(tensors, image_index, rois)
            # Only the faces whose face flag passes get their geometry.
            keep = (batch.presence >= self.config.min_presence).cpu().numpy()
            kept = np.flatnonzero(keep)
            rows = torch.from_numpy(kept).to(batch.landmarks.device)
            image_index = [image_index[j] for j in kept]
            with self.stage(timings, "geometry"):
                faces = self.build_faces(batch.landmarks[rows], batch.presence[rows],
                                         [intr[i] for i in image_index],
                                         [rois[j] for j in kept], [flat[j].score for j in kept],
                                         [-1] * len(kept))
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return [FrameResult(faces=tuple(f for f, i in zip(faces, image_index) if i == j),
                            image_size=(int(t.shape[2]), int(t.shape[1])), intrinsics=intr[j],
                            timings_ms=dict(timings), detector_tiles=found.tiles[j],
                            faces_dropped=found.dropped[j])
                for j, t in enumerate(tensors)]

    def process(self, image: np.ndarray,
                intrinsics: Optional[CameraIntrinsics] = None) -> FrameResult:
        """All faces of one image (:meth:`process_batch` of one)."""
        return self.process_batch([image], [intrinsics])[0]
