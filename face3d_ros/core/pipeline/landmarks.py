"""Face ROIs, batched rotated crops, and the face mesh + iris landmark stage in torch.

ROI convention
--------------
A :class:`Roi` is a rotated square: centre (px), side (px), rotation ``r`` (rad). Crop pixel
``(u, v)`` of an ``S x S`` crop maps to the image point

    p = c + R(r) @ ((u / S - 0.5) * side, (v / S - 0.5) * side),   R(r) = [[cos, -sin], [sin, cos]]

so the crop's x axis points along ``(cos r, sin r)`` in image pixels (y down). A face whose eye
line runs from the subject's right eye to their left eye along that direction appears upright in
the crop. A head that tilts counter-clockwise in the image gives ``r < 0`` (MediaPipe's
``NormalizedRect.rotation``); rotating the image counter-clockwise by ``a`` changes ``r`` by
``-a``.

Pipeline of :meth:`LandmarkRunner.run`
--------------------------------------
1. Crop every face ROI to 192x192 in one batched warp per source image (bilinear, border
   replicate), RGB in [0, 1].
2. One face-mesh forward for all faces: 468 points in crop px and the face-flag logit; with
   ``mesh_flip`` (default) also for the mirror image of every crop, whose points, mapped back
   and renumbered left for right, are averaged with the first view's (the network's own
   left/right bias cancels: mirrored images read mirrored gaze and pose).
3. Map the mesh to image px with each crop's affine; z is scaled like x (``side / 192``).
4. Eye ROIs from the mesh eye corners (subject's right eye 33-133, left eye 362-263): centred
   between the corners, rotated along them, side 2.3x the corner distance. The left eye's crop
   is mirrored so both eyes look like a right eye to the iris network.
5. One iris forward for all 2N eyes (64x64): 71 eye-region points and 5 iris points (centre
   first, then 4 on the iris contour), mapped back through the (mirrored) eye affine.
6. Iris depth: z scaled like x (``eye side / 64``) and shifted so that the 16 eyelid points of the
   iris network have the same mean depth as the mesh's matching eyelid vertices.
7. The 16 eyelid points of each eye replace the mesh vertices they correspond to (as
   MediaPipe's ``UpdateFaceLandmarksCalculator`` does for the eye regions): the lids follow a
   closed eye, and the eye corners come from the same crop as the iris.
8. ``landmarks`` = mesh (468) + right iris (468..472) + left iris (473..477).

Crops and network calls have two paths; the decoding (step 3 on) is shared. On the CUDA device
crops are one ``grid_sample`` per source image and the networks see NCHW tensors. On the CPU
(the host path, also used with the LiteRT backend) each crop is one ``cv2.warpAffine`` of a numpy
view of the image (bilinear, border replicate: MediaPipe's own CPU crop), written into one NHWC
float32 batch that goes to the backend without a layout copy (``FaceModels.infer``); only the
network outputs are wrapped as CPU tensors for the decoding.

Without ``refine_iris`` steps 4-6 are skipped: ``eye_contour`` then comes from the mesh vertices
that the iris network's 71 points correspond to, and all five points of each iris are the mean
of the mesh's 16 eyelid vertices of that eye (the iris size is then zero and must not be used
for metric scale).

One module (over 400 lines): the ROI convention, the crops and the mesh/iris stage share the
crop affine in both directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from face3d_ros.core.config import EngineConfig
from face3d_ros.core.pipeline.detection import check_image, host_image
from face3d_ros.core.types import Detection, Roi

__all__ = [
    "MESH_SIZE",
    "IRIS_SIZE",
    "FACE_ROI_SCALE",
    "EYE_ROI_SCALE",
    "RIGHT_EYE_CONTOUR_INDEX",
    "LEFT_EYE_CONTOUR_INDEX",
    "LandmarkBatch",
    "LandmarkRunner",
    "roi_from_detection",
    "roi_from_landmarks",
    "rois_to_tensor",
    "roi_affine",
    "crop_rois",
]

MESH_SIZE = 192
IRIS_SIZE = 64
FACE_ROI_SCALE = 1.5
EYE_ROI_SCALE = 2.3
#: Offset (crop px) from the mesh network's output coordinates to the crop's continuous
#: coordinates: the network puts pixel i's centre at i, the crop affine at i + 0.5. Measured by
#: mirroring crops: x(crop) + x(mirrored crop) = 191 = S - 1 for the mesh (S = 192), 64.0 = S
#: for the iris network (test_landmarks checks both).
MESH_PIXEL_CENTRE = 0.5
#: Mesh vertices of the eye corners used for rotation (MediaPipe face mesh topology).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263

#: Mesh vertex of each of the iris network's 71 eye-region points, for the subject's right eye
#: (unmirrored crop): 9 lower eyelid points from the outer corner, 7 upper eyelid points, then
#: four halos around the eye and the eyebrow (MediaPipe ``iris_landmark`` mapping).
RIGHT_EYE_CONTOUR_INDEX = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
    156, 70, 63, 105, 66, 107, 55, 193,
)
#: The same for the subject's left eye (its crop mirrored).
LEFT_EYE_CONTOUR_INDEX = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
)
#: The first 16 contour points are the eyelids.
NUM_EYELID = 16


def _normalize_angle(a: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return a - 2.0 * math.pi * math.floor((a + math.pi) / (2.0 * math.pi))


def roi_from_detection(det: Detection, scale: float = FACE_ROI_SCALE) -> Roi:
    """Face-mesh ROI of a detection (MediaPipe ``face_detection_front_detection_to_roi``).

    Centre: the detection box centre. Rotation: along the line from the subject's right eye
    keypoint to the left eye keypoint (eyes horizontal in the crop). Side: the box's longer side
    times ``scale`` (1.5).
    """
    box = np.asarray(det.box, dtype=np.float64)
    kp = np.asarray(det.keypoints, dtype=np.float64)
    dx, dy = kp[1] - kp[0]
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    centre = (0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]))
    return Roi(center=(float(centre[0]), float(centre[1])), size=float(side),
               rotation=_normalize_angle(math.atan2(dy, dx)))


def roi_from_landmarks(landmarks: Union[np.ndarray, torch.Tensor],
                       scale: float = FACE_ROI_SCALE) -> Roi:
    """Face-mesh ROI for the next frame from this frame's landmarks (tracking).

    landmarks: (468, 2+) or (478, 2+) image px; only the 468 mesh vertices are used. As
    MediaPipe's ``face_landmark_landmarks_to_roi``: centre and longer side of the axis-aligned
    box around all vertices, side times ``scale`` (1.5), rotation along vertices 33 -> 263 (outer
    eye corners, subject's right to left).
    """
    if isinstance(landmarks, torch.Tensor):
        landmarks = landmarks.detach().cpu().numpy()
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] not in (468, 478) or pts.shape[1] < 2:
        raise ValueError(f"landmarks must be (468, 2+) or (478, 2+) image px, got {pts.shape}")
    xy = pts[:468, :2]
    lo, hi = xy.min(0), xy.max(0)
    dx, dy = xy[LEFT_EYE_OUTER] - xy[RIGHT_EYE_OUTER]
    centre = 0.5 * (lo + hi)
    return Roi(center=(float(centre[0]), float(centre[1])), size=float((hi - lo).max() * scale),
               rotation=_normalize_angle(math.atan2(dy, dx)))


def rois_to_tensor(rois: Sequence[Roi], device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 4) float32 ``cx, cy, side, rotation`` of ``rois`` on ``device``."""
    arr = np.array([[r.center[0], r.center[1], r.size, r.rotation] for r in rois],
                   dtype=np.float32).reshape(-1, 4)
    return torch.as_tensor(arr, device=device)


def roi_affine(rois: torch.Tensor, size: int, mirror: Union[bool, torch.Tensor] = False
               ) -> torch.Tensor:
    """Affine maps crop px -> image px of rotated square ROIs.

    rois: (N, 4) cx, cy, side (px), rotation (rad); size: crop side S (px); mirror: flip the
    crop horizontally (bool or (N,) bool). Returns (N, 2, 3) A with image = A[:, :, :2] @ crop
    + A[:, :, 2] (see the module docstring for the convention).
    """
    return _roi_affine(rois, size, mirror, host=rois.device.type == "cpu")


def _roi_affine(rois: torch.Tensor, size: int, mirror: Union[bool, torch.Tensor], host: bool
                ) -> torch.Tensor:
    """:func:`roi_affine` in numpy (``host``: a few µs instead of ~20 torch calls on the CPU)
    or in torch on the tensors' device; the same formulas."""
    r: Any = rois.numpy() if host else rois  # numpy array or tensor: the same formulas
    xp: Any = np if host else torch
    sign: Any
    cx, cy, side, rot = r[:, 0], r[:, 1], r[:, 2], r[:, 3]  # (N,) each
    k = side / size
    c, s = xp.cos(rot) * k, xp.sin(rot) * k
    # image = centre + R * k * (u - S/2, v - S/2)
    h = 0.5 * size
    c0, s1 = c, s  # column 0 (the crop's u axis) of the two rows
    if isinstance(mirror, torch.Tensor) or mirror:
        if host:
            m = mirror.cpu().numpy() if isinstance(mirror, torch.Tensor) else mirror
            sign = 1.0 - 2.0 * np.asarray(m, dtype=r.dtype)
        else:
            sign = 1.0 - 2.0 * torch.as_tensor(mirror, dtype=rois.dtype, device=rois.device)
        # u -> S - u: column 0 negated, offset gets the S shift
        c0, s1 = c * sign, s * sign  # (N,)
    if host:  # one array filled in place: three stacks cost more than the arithmetic
        out = np.empty((len(r), 2, 3), r.dtype)
        out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = c0, -s, cx - c0 * h + s * h
        out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = s1, c, cy - s1 * h - c * h
        return torch.from_numpy(out)
    row0 = xp.stack([c0, -s, cx - c0 * h + s * h], -1)
    row1 = xp.stack([s1, c, cy - s1 * h - c * h], -1)
    return xp.stack([row0, row1], 1)  # (N, 2, 3)


def _warp(images: Sequence[torch.Tensor], groups: List[List[int]], affine: torch.Tensor,
          size: int, padding_mode: str) -> torch.Tensor:
    """Sample (N, 3, size, size) crops; ``groups[i]`` lists the rows of ``affine`` on image i."""
    n = affine.shape[0]
    device, dtype = affine.device, affine.dtype
    crops = None
    for img_i, rows in enumerate(groups):
        if not rows:
            continue
        img = images[img_i]
        if not img.is_floating_point():  # uint8 (e.g. FaceEngine.to_tensor on the CPU)
            img = img.float()
        h, w = int(img.shape[1]), int(img.shape[2])
        a = affine if len(rows) == n else affine[torch.as_tensor(rows, device=device)]
        # theta: crop normalised -> image normalised (align_corners=False conventions).
        in_norm = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0]], device=device,
                               dtype=dtype)
        out_denorm = torch.tensor([[size / 2.0, 0.0, size / 2.0], [0.0, size / 2.0, size / 2.0],
                                   [0.0, 0.0, 1.0]], device=device, dtype=dtype)
        a3 = torch.cat([a, a.new_tensor([0.0, 0.0, 1.0]).expand(a.shape[0], 1, 3)], 1)
        theta = in_norm @ a3 @ out_denorm  # (k, 2, 3)
        grid = F.affine_grid(theta, [a.shape[0], 3, size, size], align_corners=False)
        grid = grid.reshape(1, a.shape[0] * size, size, 2)  # all crops of this image at once
        out = F.grid_sample(img[None], grid, mode="bilinear", padding_mode=padding_mode,
                            align_corners=False)  # (1, 3, k*S, S)
        out = out.reshape(3, a.shape[0], size, size).transpose(0, 1)  # (k, 3, S, S)
        if len(rows) == n:
            return out.contiguous()
        if crops is None:
            crops = out.new_zeros((n, 3, size, size))
        crops[torch.as_tensor(rows, device=device)] = out
    if crops is None:
        raise ValueError("no ROI refers to any of the given images")
    return crops


#: ``crop_rois`` padding modes of the host path -> OpenCV border modes.
_CV_BORDER = {"border": cv2.BORDER_REPLICATE, "zeros": cv2.BORDER_CONSTANT}


def _warp_host(images: Sequence[np.ndarray], groups: List[List[int]], affine: np.ndarray,
               size: int, border: int, scale: float = 1.0, mirrored: bool = False
               ) -> np.ndarray:
    """Host path of :func:`_warp`: (N, size, size, 3) float32 NHWC crops times ``scale``.

    images: (H, W, 3) uint8 or float32 arrays; affine: (N, 2, 3) crop px -> image px (float);
    border: an OpenCV border mode. One ``cv2.warpAffine`` per crop, bilinear; OpenCV indexes
    pixel centres at integers where the affine puts them at half-integers, hence the shift.
    ``mirrored``: (2N, ...) the crops, then their mirror images (crop x -> S - x) in the same
    buffer (flipped copies, not second warps).
    """
    n = affine.shape[0]
    out = np.empty(((2 if mirrored else 1) * n, size, size, 3), np.float32)
    m = np.array(affine, dtype=np.float64)  # (N, 2, 3)
    m[:, :, 2] += 0.5 * (m[:, :, 0] + m[:, :, 1]) - 0.5  # pixel index -> pixel index
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    u8 = np.empty((size, size, 3), np.uint8)
    for img_i, rows in enumerate(groups):
        img = images[img_i]
        for r in rows:
            if img.dtype == np.uint8:
                cv2.warpAffine(img, m[r], (size, size), dst=u8, flags=flags, borderMode=border)
                np.multiply(u8, np.float32(scale), out=out[r], casting="unsafe")
            else:
                cv2.warpAffine(img, m[r], (size, size), dst=out[r], flags=flags,
                               borderMode=border)
                if scale != 1.0:
                    out[r] *= np.float32(scale)
    for r in range(n) if mirrored else ():  # cv2.flip: ~15x a strided numpy copy
        cv2.flip(out[r], 1, dst=out[n + r])
    return out


def _groups(image_index: Union[torch.Tensor, Sequence[int]], num_images: int,
            num_rois: int) -> Tuple[List[List[int]], List[int]]:
    """Rows per image and the image of each row, from ``image_index`` (validated)."""
    if isinstance(image_index, torch.Tensor):
        idx = [int(i) for i in image_index.reshape(-1).tolist()]
    else:
        idx = [int(i) for i in image_index]
    if len(idx) != num_rois:
        raise ValueError(f"image_index has {len(idx)} entries for {num_rois} ROIs; give one "
                         f"image index per ROI")
    groups: List[List[int]] = [[] for _ in range(num_images)]
    for row, i in enumerate(idx):
        if not 0 <= i < num_images:
            raise ValueError(f"image_index[{row}] = {i} is outside the {num_images} images")
        groups[i].append(row)
    return groups, idx


def _device_of(images: Sequence[torch.Tensor]) -> torch.device:
    if len(images) == 0:
        raise ValueError("no images given")
    return images[0].device


@torch.inference_mode()
def crop_rois(images: Sequence[torch.Tensor], image_index: Union[torch.Tensor, Sequence[int]],
              rois: Sequence[Roi], size: int, padding_mode: str = "border"
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Crop rotated square ROIs from images in one batched warp per source image.

    images: each (3, H, W) on one device, any value range (kept). image_index: (N,) the image of
    each ROI (a CPU tensor or list avoids a device sync). rois: N :class:`Roi`. size: crop side
    (px). padding_mode: "border" (replicate, as MediaPipe's landmark crops) or "zeros".
    Returns crops (N, 3, size, size) bilinear-sampled and affine (N, 2, 3) crop px -> image px.
    """
    device = _device_of(images)
    if device.type == "cpu" and padding_mode in _CV_BORDER:  # host path (module docstring)
        hosts = [host_image(img, i) for i, img in enumerate(images)]
        groups, _ = _groups(image_index, len(hosts), len(rois))
        affine = roi_affine(rois_to_tensor(rois), size)
        crops = _warp_host(hosts, groups, affine.numpy(), size, _CV_BORDER[padding_mode])
        return torch.from_numpy(crops).permute(0, 3, 1, 2), affine  # (N, 3, S, S) view
    imgs = [check_image(img, i, device) for i, img in enumerate(images)]
    groups, _ = _groups(image_index, len(imgs), len(rois))
    affine = roi_affine(rois_to_tensor(rois, device), size)
    if len(rois) == 0:
        return imgs[0].new_zeros((0, 3, size, size)), affine
    return _warp(imgs, groups, affine, size, padding_mode), affine


def _apply_affine(affine: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) affine, (N, P, 2+) points -> (N, P, 2) mapped x, y."""
    return pts[..., :2] @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


@dataclass(frozen=True)
class LandmarkBatch:
    """Landmarks of N faces (torch tensors on the models' device).

    landmarks: (N, 478, 3) x, y image px, z relative depth in px (smaller is nearer), layout of
        ``types`` (468 mesh, 468..472 right iris centre + contour, 473..477 left iris).
    presence: (N,) mesh face flag probability in [0, 1].
    eye_contour: (N, 2, 71, 3) image px of the iris network's eye-region points, index 0 the
        subject's right eye, 1 the left; the first 16 points are the eyelids (9 lower from the
        outer corner, 7 upper), see ``RIGHT_EYE_CONTOUR_INDEX``.
    mesh_affine: (N, 2, 3) mesh crop px (192) -> image px.
    eye_affine: (N, 2, 2, 3) iris crop px (64, mirrored for the left eye) -> image px; zeros
        without ``refine_iris``.
    image_index: (N,) int64 source image of each face.
    """

    landmarks: torch.Tensor
    presence: torch.Tensor
    eye_contour: torch.Tensor
    mesh_affine: torch.Tensor
    eye_affine: torch.Tensor
    image_index: torch.Tensor

    def __len__(self) -> int:
        """Return the number of faces."""
        return int(self.landmarks.shape[0])


class LandmarkRunner:
    """Face mesh + iris landmarks for a batch of face ROIs (steps in the module docstring).

    models: the loaded networks (``mesh``, ``iris``, ``infer`` on the host path, and
    ``device``); config: uses ``refine_iris``. host: crops and network calls on the host path
    (default on the CPU, see the module docstring) instead of torch on the device.
    """

    def __init__(self, models, config: EngineConfig, host: Optional[bool] = None) -> None:
        """Keep the networks and the eye-contour index tables on their device."""
        self.models = models
        self.config = config
        self.device = torch.device(getattr(models, "device", "cpu"))
        self.host = self.device.type == "cpu" if host is None else host
        self._right_idx = torch.tensor(RIGHT_EYE_CONTOUR_INDEX, device=self.device)
        self._left_idx = torch.tensor(LEFT_EYE_CONTOUR_INDEX, device=self.device)
        self._eye_idx = torch.stack([self._right_idx, self._left_idx])  # (2, 71)
        # (core.pipeline.canonical imports core.pipeline.geometry)
        from face3d_ros.core.pipeline.canonical import load_canonical

        self._mirror = torch.as_tensor(load_canonical().mirror[:468], device=self.device)

    @torch.inference_mode()
    def run(self, images: Sequence[torch.Tensor], image_index: Union[torch.Tensor, Sequence[int]],
            rois: Sequence[Roi]) -> LandmarkBatch:
        """Compute the landmarks of every ROI.

        images: each (3, H, W) RGB 0..255 on the models' device; image_index: (N,) source image
        of each ROI (CPU tensor or list); rois: N face ROIs (e.g. :func:`roi_from_detection`).
        """
        imgs: Sequence[Union[torch.Tensor, np.ndarray]]
        if self.host:
            imgs = [host_image(img, i) for i, img in enumerate(images)]
        else:
            imgs = [check_image(img, i, self.device) for i, img in enumerate(images)]
        groups, idx = _groups(image_index, len(imgs), len(rois))
        n = len(rois)
        index_t = torch.tensor(idx, dtype=torch.long)
        if n == 0:
            z = torch.zeros((0,), device=self.device)
            return LandmarkBatch(z.new_zeros((0, 478, 3)), z, z.new_zeros((0, 2, 71, 3)),
                                 z.new_zeros((0, 2, 3)), z.new_zeros((0, 2, 2, 3)),
                                 index_t.to(self.device))
        roi_t = rois_to_tensor(rois, self.device)  # (N, 4)
        mesh_affine = roi_affine(roi_t, MESH_SIZE)  # (N, 2, 3)
        views, affine = 1, mesh_affine
        if self.config.mesh_flip:  # the mirrored crops: rows N..2N-1
            views, affine = 2, torch.cat([mesh_affine, roi_affine(roi_t, MESH_SIZE, True)])
        raw, flag = self._network("mesh", imgs, groups, mesh_affine,
                                  mirrored=self.config.mesh_flip)  # (V*N, 468, 3), (V*N,)
        raw = raw.reshape(views * n, 468, 3).float()
        # The mesh network places pixel centres at integer coordinates; the crop affine (like
        # the iris network) at half-integers (align_corners=False).
        raw = torch.cat([raw[..., :2] + MESH_PIXEL_CENTRE, raw[..., 2:]], -1)
        z_scale = roi_t[:, 2:3].repeat(views, 1) / MESH_SIZE  # (V*N, 1)
        mesh = torch.cat([_apply_affine(affine, raw), (raw[..., 2] * z_scale)[..., None]],
                         -1)  # (V*N, 468, 3) image px
        presence = torch.sigmoid(flag.reshape(views, n).float()).mean(0)  # (N,)
        if views == 2:
            # In a mirrored crop the network names the subject's right what is their left:
            # renumber its points by the mirror permutation, then average the two views.
            mesh = 0.5 * (mesh[:n] + mesh[n:][:, self._mirror])
        if self.config.refine_iris:
            eye_contour, iris, eye_affine = self._iris(imgs, groups, mesh)
            # The iris network's eyelids replace the mesh's (as MediaPipe's face-with-iris
            # graph does): they close with the eye, and the eye corners come from the same
            # crop as the iris. Its outer rings and brows, at the edge of the eye crop, do not
            # follow a raised brow: the mesh keeps its own there.
            lids = self._eye_idx[:, :NUM_EYELID].reshape(-1)
            mesh = mesh.index_copy(1, lids, eye_contour[:, :, :NUM_EYELID].reshape(n, -1, 3))
        else:
            eye_contour = mesh[:, self._eye_idx]  # (N, 2, 71, 3)
            centre = eye_contour[:, :, :NUM_EYELID].mean(2, keepdim=True)  # (N, 2, 1, 3)
            iris = centre.expand(n, 2, 5, 3)
            eye_affine = mesh.new_zeros((n, 2, 2, 3))
        landmarks = torch.cat([mesh, iris.reshape(n, 10, 3)], dim=1)  # (N, 478, 3)
        return LandmarkBatch(landmarks=landmarks, presence=presence, eye_contour=eye_contour,
                             mesh_affine=mesh_affine, eye_affine=eye_affine,
                             image_index=index_t.to(self.device))

    def _network(self, key: str, imgs: Sequence, groups: List[List[int]], affine: torch.Tensor,
                 mirrored: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Crop every ``affine`` (N, 2, 3) from ``imgs`` for network ``key`` ("mesh" or
        "iris"), RGB in [0, 1], and run it: its two outputs as tensors on the device.
        ``mirrored``: after the N crops, their mirror images (rows N..2N-1), flipped rather
        than sampled again: ``roi_affine(..., mirror=True)`` samples the same points in
        mirrored order (crop x -> S - x)."""
        size = MESH_SIZE if key == "mesh" else IRIS_SIZE
        if self.host:
            crops = _warp_host(imgs, groups, affine.numpy(), size, cv2.BORDER_REPLICATE,
                               1.0 / 255.0, mirrored)  # (V*N, S, S, 3)
            a, b = self.models.infer(key, crops)
            return torch.from_numpy(a), torch.from_numpy(b)
        x = _warp(imgs, groups, affine, size, "border") * (1.0 / 255.0)  # (N, 3, S, S)
        if mirrored:
            x = torch.cat([x, x.flip(3)])
        return self.models.mesh(x) if key == "mesh" else self.models.iris(x)

    def _iris(self, imgs: Sequence, groups: List[List[int]], mesh: torch.Tensor
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eye crops from the mesh, one iris forward for all eyes, results in image px.

        mesh: (N, 468, 3) image px. Returns eye_contour (N, 2, 71, 3), iris (N, 2, 5, 3) and
        eye_affine (N, 2, 2, 3).
        """
        n = mesh.shape[0]
        corners = mesh[:, [RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER],
                       :2].reshape(n, 2, 2, 2)  # (N, eye, start/end, xy)
        start, end = corners[:, :, 0], corners[:, :, 1]  # (N, 2, 2)
        d = end - start
        # Side from the corner distance: MediaPipe's axis-aligned box of the two corners
        # shrinks the crop by up to 1/sqrt(2) for a rolled head, the distance does not.
        eye_rois = torch.cat([0.5 * (start + end), EYE_ROI_SCALE * d.norm(dim=-1, keepdim=True),
                              torch.atan2(d[..., 1], d[..., 0])[..., None]], -1)  # (N, 2, 4)
        mirror = torch.tensor([False, True], device=self.device).expand(n, 2).reshape(-1)
        eye_affine = roi_affine(eye_rois.reshape(2 * n, 4), IRIS_SIZE, mirror)  # (2N, 2, 3)
        eye_groups = [[2 * r + e for r in g for e in (0, 1)] for g in groups]
        contour_raw, iris_raw = self._network("iris", imgs, eye_groups,
                                              eye_affine)  # (2N, 71, 3), (2N, 5, 3) crop px
        raw = torch.cat([contour_raw.reshape(2 * n, 71, 3), iris_raw.reshape(2 * n, 5, 3)],
                        1).float()  # (2N, 76, 3)
        xy = _apply_affine(eye_affine, raw)  # (2N, 76, 2)
        z = raw[..., 2] * (eye_rois.reshape(2 * n, 4)[:, 2:3] / IRIS_SIZE)  # (2N, 76)
        pts = torch.cat([xy, z[..., None]], -1).reshape(n, 2, 76, 3)
        # Depth offset: iris-network eyelids to the mesh's eyelid vertices (mean z).
        mesh_lids = mesh[:, self._eye_idx[:, :NUM_EYELID], 2]  # (N, 2, 16)
        offset = mesh_lids.mean(-1) - pts[:, :, :NUM_EYELID, 2].mean(-1)  # (N, 2)
        pts = pts + torch.stack([torch.zeros_like(offset), torch.zeros_like(offset), offset],
                                -1)[:, :, None, :]
        return pts[:, :, :71], pts[:, :, 71:], eye_affine.reshape(n, 2, 2, 3)
