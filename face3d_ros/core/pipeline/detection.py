"""Batched BlazeFace face detection (MediaPipe short- and full-range detectors) in torch.

Pipeline of :meth:`FaceDetector.detect_batch` (MediaPipe ``face_detection_*_common`` graphs):

1. Letterbox every image into the detector's square input, keeping its aspect ratio: resize on
   the device (bilinear, antialiased when shrinking) and pad with black to the centre.
2. Stack all images and run one forward per detector for the whole batch.
3. Decode the SSD outputs against fixed anchors: box centre and the six keypoints are offsets
   from the anchor centre, box size absolute, all in input pixels (``x/y/w/h scale`` = input
   size, anchors of unit size). Scores are ``sigmoid(clip(logit, -100, 100))``.
4. Keep scores >= ``min_detection_score`` and boxes of positive size; undo the letterbox so
   every candidate is in image pixels (candidates of both detectors meet here for "both").
5. Weighted non-maximum suppression per image (MediaPipe's ``WEIGHTED`` algorithm): take the
   best remaining candidate, average the box and keypoints of every candidate whose IoU with it
   exceeds ``nms_iou`` weighted by score, keep the best score; repeat on the rest.
6. Keep the ``max_faces`` best faces per image, sorted by score; how many more were found is
   counted (``DetectionBatch.dropped``), never silently lost.

Tiles (:func:`plan_tiles`): a face of ``min_face_px`` in a large image is only a few pixels
after the letterbox of step 1. So beside the whole image, overlapping square tiles are
scanned, sized so that such a face reaches ``AnchorSpec.min_face_px`` in the network input.
The tiles of one level share one resize (:func:`plan_scan`): the region they cover is resized
once with the filter of step 1 and each tile is a window of it, placed in the detector input
as the letterbox places an image (overlapping tiles would otherwise resize most pixels four
times). Tiles form a small pyramid
(sides ``t, 2t, 4t, ...`` with the fewest tiles in total); the tiles of one level overlap by
1.25x the smallest face the next coarser level finds, so every face lies whole in a tile of
the level that must find it. Tiles go through one network (short range when configured: for
the same tile it costs a third of the full range and finds the same small faces), in the same
batched forward as the whole images. A candidate whose box
touches an inner tile edge (a face cut by the tile) is dropped: that face lies whole in a
neighbouring tile or is found at a coarser level; so is one larger than twice the smallest
face of the next coarser level, which finds it whole (the whole image's big faces come from
the whole image alone, as without tiles). All candidates of an image then meet in
image pixels for step 5, so a face seen in several tiles and in the whole image is kept once.

The device work of steps 1-4 is queued without waiting; one host transfer then carries the
surviving candidates of all images to numpy, where step 5 runs.

On the CPU (the host path) the same steps run without torch tensors in between: each image is a
numpy view of the caller's (H, W, 3) memory, the letterbox resize is torch's uint8 antialiased
bilinear kernel on that view, the batch is an NHWC float32 array handed to the backend as is
(LiteRT takes NHWC, torch a channels_last view of it), and only the anchors above the score
threshold are decoded, in numpy.

One module (over 400 lines) because it is one stage: letterbox, forward, decode, tiles and
merging share the anchors and the candidate layout; split, each part would import the others'
private layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from face3d_ros.core.config import EngineConfig
from face3d_ros.core.types import Detection

__all__ = [
    "AnchorSpec",
    "DetectionBatch",
    "SHORT_RANGE",
    "FULL_RANGE",
    "FaceDetector",
    "generate_anchors",
    "check_image",
    "host_image",
    "Scan",
    "plan_scan",
    "plan_tiles",
    "weighted_nms",
]

#: MediaPipe's ``score_clipping_thresh`` of the face detectors.
SCORE_CLIP = 100.0
#: Tiles of one pyramid level overlap by this many times the smallest face of the next level.
TILE_OVERLAP = 1.25
#: A tile candidate whose box comes within this share of its side of an inner tile edge is cut.
TILE_EDGE_MARGIN = 0.05
#: Detector keypoint count and order (subject's right eye, left eye, nose tip, mouth centre,
#: right ear tragion, left ear tragion).
NUM_KEYPOINTS = 6


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor layout of one detector (MediaPipe ``SsdAnchorsCalculatorOptions``).

    input_size: side of the square input (px). strides: one per feature layer; consecutive
    layers of equal stride share one feature map. anchors_per_layer: anchors each layer adds per
    cell (2 with ``interpolated_scale_aspect_ratio`` 1.0, else 1 for aspect ratio 1.0 only).
    All anchors have unit size (``fixed_anchor_size``) and sit at cell centres (offset 0.5).
    min_face_px: the smallest face (detector box side, px of the input) found reliably: a
    portrait shrunk straight into the input square is found from 11-13 px (full range) and
    14-15 px (short range) on, but faces shrunk twice (into a crowd photo, then into the
    input) need 24 and 16 px (measured on the crowds of test_crowds, docs/pipeline.md).
    """

    name: str
    input_size: int
    strides: Tuple[int, ...]
    anchors_per_layer: int
    min_face_px: float

    @property
    def num_anchors(self) -> int:
        """Total anchor count (896 short range, 2304 full range)."""
        return sum((self.input_size // s) ** 2 * self.anchors_per_layer for s in self.strides)


SHORT_RANGE = AnchorSpec("short", 128, (8, 16, 16, 16), 2, 16.0)
FULL_RANGE = AnchorSpec("full", 192, (4,), 1, 24.0)

#: A tile (x0, y0, x1, y1) in image pixels, end exclusive.
Tile = Tuple[int, int, int, int]


@dataclass(frozen=True)
class DetectionBatch:
    """Detections of a batch of images (:meth:`FaceDetector.detect_frames`).

    faces: per image the detections, best score first, at most ``max_faces``. dropped: per
    image how many more faces were found than ``max_faces`` (the lowest scores). tiles: per
    image how many tiles were scanned besides (or instead of) the whole image.
    """

    faces: List[List[Detection]]
    dropped: List[int]
    tiles: List[int]


def _grid(width: int, height: int, side: float, overlap: float) -> List[Tile]:
    """Square tiles of ``side`` px (clipped to the image) covering it, neighbours overlapping
    by at least ``overlap`` px, spread evenly from edge to edge."""
    tiles = []
    axes = []
    for extent in (width, height):
        s = int(round(min(side, extent)))
        ov = min(overlap, 0.75 * s)  # only very elongated images need the clamp
        n = 1 if s >= extent else int(math.ceil((extent - ov) / (s - ov)))
        starts = [int(round(i * (extent - s) / (n - 1))) if n > 1 else 0 for i in range(n)]
        axes.append((starts, s))
    (xs, sx), (ys, sy) = axes
    for y in ys:
        for x in xs:
            tiles.append((x, y, x + sx, y + sy))
    return tiles


def plan_tiles(width: int, height: int, min_face_px: float, spec: AnchorSpec,
               max_levels: int = 6) -> List[Tile]:
    """Tiles that let ``spec`` find every face of ``min_face_px`` (detector box side, image px)
    in a ``width`` x ``height`` image; empty when the whole image is enough (or
    ``min_face_px`` is 0).

    The finest level's side t makes a face of ``min_face_px`` reach ``spec.min_face_px`` in
    the input; coarser levels double it. Each level's tiles overlap by ``TILE_OVERLAP`` x the
    smallest face of the next coarser level (the whole image last), so every face is whole in
    a tile of some level that finds it. Of the pyramids of 1..``max_levels`` levels the one
    with the fewest tiles is returned, finest level first.
    """
    if min_face_px <= 0:
        return []
    longest = max(width, height)
    ratio = spec.min_face_px / spec.input_size  # smallest face / side of the area scanned
    if ratio * longest <= min_face_px:
        return []
    finest = min_face_px / ratio
    best: Optional[List[Tile]] = None
    for levels in range(1, max_levels + 1):
        sides = [finest * 2 ** k for k in range(levels)]
        if sides[-1] >= longest:
            break
        tiles: List[Tile] = []
        for k, side in enumerate(sides):
            coarser = sides[k + 1] if k + 1 < levels else longest
            tiles += _grid(width, height, side, TILE_OVERLAP * ratio * coarser)
        if best is None or len(tiles) < len(best):
            best = tiles
    return best or []


def generate_anchors(spec: AnchorSpec, device: torch.device | str = "cpu") -> torch.Tensor:
    """Anchor centres of ``spec`` in the model's output order.

    Returns (A, 2) float32 x, y centres normalised to [0, 1] of the input square. Layers of
    equal stride are merged: each cell of their shared feature map (row-major) repeats its
    centre once per anchor of every merged layer.
    """
    chunks = []
    i = 0
    while i < len(spec.strides):
        j = i
        while j < len(spec.strides) and spec.strides[j] == spec.strides[i]:
            j += 1
        n = spec.input_size // spec.strides[i]
        repeats = (j - i) * spec.anchors_per_layer
        c = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        centres = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)  # (n*n, 2)
        chunks.append(centres.repeat_interleave(repeats, dim=0))
        i = j
    anchors = torch.cat(chunks, dim=0)
    if anchors.shape[0] != spec.num_anchors:
        raise AssertionError(f"{spec.name}: {anchors.shape[0]} anchors, "
                             f"expected {spec.num_anchors}")
    return anchors.to(device)


def check_image(image: torch.Tensor, index: int, device: torch.device) -> torch.Tensor:
    """Validate one input image and return it as float32 (3, H, W).

    Accepts float or uint8 tensors with values 0..255 on ``device``; raises ``TypeError`` or
    ``ValueError`` that names the fix for anything else.
    """
    _validate_image(image, index, device)
    if image.dtype == torch.float32:
        return image
    return image.float()


def host_image(image: torch.Tensor, index: int) -> np.ndarray:
    """(H, W, 3) numpy view of a CPU (3, H, W) image tensor, uint8 or float32, values 0..255.

    No copy when the tensor's memory is already (H, W, 3) (e.g. ``FaceEngine.to_tensor`` on the
    CPU, or ``torch.from_numpy(hwc).permute(2, 0, 1)``); otherwise one copy to that layout
    (and float32 for other float types). Validation as :func:`check_image`.
    """
    _validate_image(image, index, torch.device("cpu"))
    hwc = image.permute(1, 2, 0)
    if image.dtype not in (torch.uint8, torch.float32):
        hwc = hwc.float()
    arr = hwc.numpy()
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _validate_image(image: torch.Tensor, index: int, device: torch.device) -> None:
    """Raise ``TypeError`` / ``ValueError`` naming the fix unless ``image`` is usable."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image {index}: expected a torch.Tensor (3, H, W) RGB 0..255, got "
                        f"{type(image).__name__}; convert a numpy HxWx3 array with "
                        f"torch.from_numpy(a).permute(2, 0, 1)")
    if image.dim() != 3 or image.shape[0] != 3:
        hint = (" (grayscale: repeat it to 3 channels, img.expand(3, -1, -1))"
                if image.dim() == 2 or (image.dim() == 3 and image.shape[0] == 1) else
                " (channels last? use img.permute(2, 0, 1))")
        raise ValueError(f"image {index}: expected shape (3, H, W), got "
                         f"{tuple(image.shape)}{hint}")
    if image.shape[1] < 1 or image.shape[2] < 1:
        raise ValueError(f"image {index}: empty image of shape {tuple(image.shape)}")
    if image.device != device:
        raise ValueError(f"image {index} is on {image.device} but the models run on {device}; "
                         f"move it with image.to({str(device)!r})")
    if not (image.dtype == torch.uint8 or image.is_floating_point()):
        raise TypeError(f"image {index}: dtype {image.dtype} is not supported, pass float32 or "
                        f"uint8 values 0..255")


#: A view of an image scanned by a detector: (image index, rect xyxy px, is a tile).
View = Tuple[int, Tile, bool]


@dataclass(frozen=True)
class Scan:
    """How one detector's batch is cut from the images (:func:`plan_scan`).

    Each source is a region of an image resized once; every row of the batch is a window of
    one source's resized region, letterboxed into the detector's square input.

    views: (V,) the view index of each batch row. sources: per resize (image index, region
    xyxy image px, resized (w, h) px, the batch rows it feeds). windows: (V, 4) int u0, v0,
    w, h of each row's window in its source's resized region (px). params: (V, 4) float64
    sx, sy, left, top: image_px = (input_px - (left, top)) * (sx, sy) + rect[:, :2].
    rect: (V, 4) float64 xyxy image px that each row's window covers.
    """

    views: np.ndarray
    sources: List[Tuple[int, Tile, Tuple[int, int], List[int]]]
    windows: np.ndarray
    params: np.ndarray
    rect: np.ndarray


def plan_scan(views: Sequence[View], rows: Sequence[int], size: int) -> Scan:
    """The resizes and windows that letterbox the views ``rows`` (indices into ``views``)
    into a (len(rows), size, size) detector batch.

    A whole image is one source of its own: resized to fit ``size`` keeping its aspect
    ratio (the letterbox of step 1). The tiles of one pyramid level of an image (same side)
    share one source: the region they cover is resized once to the level's scale and each
    tile is a window of it, so the overlapping tiles do not resize the same pixels again
    (each pixel of a level is in up to four tiles). A tile's window starts on the resized
    grid, so it may cover up to half a resized pixel (``sx / 2`` image px) off the tile's
    nominal rect; ``rect`` is what it covers, and what its candidates are mapped and cut by.
    The filter sees the pixels beyond a tile's edge, as for the whole image.
    """
    groups: dict = {}
    for row, k in enumerate(rows):
        b, (x0, y0, x1, y1), tile = views[k]
        key = (b, x1 - x0, y1 - y0) if tile else (b, k)  # a level, or a whole image alone
        groups.setdefault(key, []).append(row)
    n = len(rows)
    windows = np.zeros((n, 4), np.int64)
    params, rect = np.zeros((n, 4)), np.zeros((n, 4))
    sources = []
    for members in groups.values():
        rects = np.array([views[rows[r]][1] for r in members], np.float64)  # (M, 4)
        w, h = rects[0, 2] - rects[0, 0], rects[0, 3] - rects[0, 1]
        scale = size / max(w, h)
        nw, nh = min(size, max(1, round(w * scale))), min(size, max(1, round(h * scale)))
        (ux0, uy0), (ux1, uy1) = rects[:, :2].min(0), rects[:, 2:].max(0)
        rw, rh = max(nw, round((ux1 - ux0) * scale)), max(nh, round((uy1 - uy0) * scale))
        sx, sy = (ux1 - ux0) / rw, (uy1 - uy0) / rh  # image px per resized px
        for r, (x0, y0) in zip(members, rects[:, :2]):
            u0 = min(rw - nw, round((x0 - ux0) / sx))
            v0 = min(rh - nh, round((y0 - uy0) / sy))
            windows[r] = (u0, v0, nw, nh)
            params[r] = (sx, sy, (size - nw) // 2, (size - nh) // 2)
            rect[r] = (ux0 + u0 * sx, uy0 + v0 * sy, ux0 + (u0 + nw) * sx,
                       uy0 + (v0 + nh) * sy)
        region = (int(ux0), int(uy0), int(ux1), int(uy1))
        sources.append((views[rows[members[0]]][0], region, (rw, rh), members))
    return Scan(np.asarray(rows, np.int64), sources, windows, params, rect)


def _resize_args(region: Tile, out: Tuple[int, int]) -> dict:
    """``F.interpolate`` arguments of step 1: bilinear, antialiased when shrinking."""
    x0, y0, x1, y1 = region
    return dict(size=(out[1], out[0]), mode="bilinear", align_corners=False,
                antialias=(out[1] < y1 - y0 or out[0] < x1 - x0))


def _letterbox(images: Sequence[torch.Tensor], scan: Scan, size: int) -> torch.Tensor:
    """The (V, 3, size, size) batch of ``scan`` scaled to [-1, 1], padded with -1 (black).

    images: (3, H, W) float32 0..255 on the device."""
    batch = images[0].new_full((len(scan.views), 3, size, size), -1.0)
    for b, (x0, y0, x1, y1), out, members in scan.sources:
        resized = F.interpolate(images[b][None, :, y0:y1, x0:x1], **_resize_args(
            (x0, y0, x1, y1), out))[0] * (2.0 / 255.0) - 1.0  # (3, rh, rw)
        for r in members:
            u0, v0, nw, nh = scan.windows[r]
            left, top = int(scan.params[r, 2]), int(scan.params[r, 3])
            batch[r, :, top:top + nh, left:left + nw] = resized[:, v0:v0 + nh, u0:u0 + nw]
    return batch


def _letterbox_host(images: Sequence[np.ndarray], scan: Scan, size: int) -> np.ndarray:
    """Host path of :func:`_letterbox`: (V, size, size, 3) float32 NHWC in [-1, 1].

    images: (H, W, 3) uint8 or float32 arrays, 0..255. The resize is the same bilinear filter
    (antialiased when shrinking); for uint8 images torch's uint8 kernel runs on a view of the
    array (its output is rounded to integers, within 1 level of the float result).
    """
    batch = np.full((len(scan.views), size, size, 3), -1.0, np.float32)
    for b, (x0, y0, x1, y1), out, members in scan.sources:
        img = images[b][y0:y1, x0:x1]
        src = torch.from_numpy(img).permute(2, 0, 1)[None]  # (1, 3, h, w) channels_last view
        if img.dtype != np.uint8:
            src = src.contiguous()
        planes = F.interpolate(src, **_resize_args((x0, y0, x1, y1), out))[0].numpy()
        # (3, rh, rw) -> (rh, rw, 3): cv2.merge takes 3% of numpy's strided transposing copy
        hwc = cv2.merge(list(np.ascontiguousarray(planes))).reshape(out[1], out[0], 3)
        scaled = np.multiply(hwc, np.float32(2.0 / 255.0), dtype=np.float32)  # once per source
        scaled -= 1.0
        for r in members:
            u0, v0, nw, nh = scan.windows[r]
            left, top = int(scan.params[r, 2]), int(scan.params[r, 3])
            batch[r, top:top + nh, left:left + nw] = scaled[v0:v0 + nh, u0:u0 + nw]
    return batch


def _decode(raw_boxes: torch.Tensor, raw_scores: torch.Tensor, anchors: torch.Tensor,
            size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode SSD outputs to boxes and keypoints in input pixels.

    raw_boxes (B, A, 16), raw_scores (B, A) logits or (B, A, 1), anchors (A, 2) normalised.
    Returns pts (B, A, 8, 2) input px (rows: box min corner, box max corner, 6 keypoints) and
    scores (B, A) in [0, 1].
    """
    raw = raw_boxes.reshape(raw_boxes.shape[0], raw_boxes.shape[1], 8, 2).float()
    anchor_px = (anchors * size)[None, :, None, :]  # (1, A, 1, 2)
    centre = raw[:, :, 0:1] + anchor_px  # (B, A, 1, 2)
    half = raw[:, :, 1:2] * 0.5  # (B, A, 1, 2)
    kps = raw[:, :, 2:] + anchor_px  # (B, A, 6, 2)
    pts = torch.cat([centre - half, centre + half, kps], dim=2)  # (B, A, 8, 2)
    logits = raw_scores.reshape(raw_scores.shape[0], raw_scores.shape[1]).float()
    scores = torch.sigmoid(logits.clamp(-SCORE_CLIP, SCORE_CLIP))
    return pts, scores


def _overlaps(boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(K, 4) xyxy -> (K, K) intersection areas and (K,) box areas."""
    x0 = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    y0 = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    x1 = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
    y1 = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _iou_row(boxes: np.ndarray, area: np.ndarray, i: int) -> np.ndarray:
    """(K,) intersection over union of box ``i`` with each of ``boxes`` (K, 4) xyxy, whose
    areas are ``area`` (K,); 0 where the union is empty."""
    w = np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0])
    h = np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = area[i] + area - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def weighted_nms(pts: np.ndarray, scores: np.ndarray, iou_threshold: float,
                 max_out: int) -> Tuple[np.ndarray, np.ndarray]:
    """Merge overlapping detections with MediaPipe's weighted non-maximum suppression.

    pts: (K, 8, 2) box min/max corners then 6 keypoints (px); scores: (K,).
    Returns (M, 8, 2) merged points and (M,) scores, best first, M <= max_out. Each output is
    the score-weighted mean of the candidates whose IoU with the best remaining one is above
    ``iou_threshold`` (the best one included); its score is the best one's.
    """
    order = np.argsort(-scores, kind="stable")
    pts, scores = pts[order].astype(np.float64), scores[order].astype(np.float64)
    boxes = pts[:, :2].reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining = np.ones(len(scores), dtype=bool)
    out_pts: List[np.ndarray] = []
    out_scores: List[float] = []
    while remaining.any() and len(out_pts) < max_out:
        best = int(np.argmax(remaining))  # first remaining = highest score
        # One IoU row per output (a crowd's K x K matrix cost 4.4 ms for K = 564).
        members = remaining & (_iou_row(boxes, area, best) > iou_threshold)
        members[best] = True
        w = scores[members]
        out_pts.append((pts[members] * w[:, None, None]).sum(0) / w.sum())
        out_scores.append(scores[best])
        remaining &= ~members
    if not out_pts:
        return np.zeros((0, 8, 2)), np.zeros((0,))
    return np.stack(out_pts), np.array(out_scores)


#: A detection whose box lies this much (share of its area) inside a better one's is dropped.
NESTED_SHARE = 0.7


def _drop_nested(pts: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Drop detections (best first) whose box overlaps a better-scored one's by more than
    ``NESTED_SHARE`` of the smaller box: two faces never nest, but a face near the limit of
    one view's sensitivity can come out of it with a loose box around the tight one of a finer
    view, an IoU below ``nms_iou`` apart (seen on crowds, 0.34)."""
    if len(scores) < 2:
        return pts, scores
    inter, area = _overlaps(pts[:, :2].reshape(-1, 4))
    share = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
    keep = np.ones(len(scores), dtype=bool)
    for j in range(1, len(scores)):
        keep[j] = not (share[j, :j][keep[:j]] > NESTED_SHARE).any()
    return pts[keep], scores[keep]


def _cut_by_tile(boxes: np.ndarray, rect: np.ndarray, inner: np.ndarray,
                 largest: np.ndarray) -> np.ndarray:
    """(K,) True where box k (xyxy, image px) is not kept from its view: it comes within
    ``TILE_EDGE_MARGIN`` x its side of an inner edge of the view (``rect`` (K, 4) xyxy,
    ``inner`` (K, 4) which edges are not the image border; a whole image has none), or its
    side exceeds ``largest`` (K,), the faces left to a coarser level."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # (K,)
    margin = TILE_EDGE_MARGIN * side
    cut = side > largest
    for e in range(4):
        lo = e < 2  # x0/y0 edges: the box must stay above them
        near = (boxes[:, e] < rect[:, e] + margin) if lo else (boxes[:, e] > rect[:, e] - margin)
        cut |= inner[:, e] & near
    return cut


@dataclass(frozen=True)
class _ScanPlan:
    """Everything a batch of images of given sizes is scanned by: the views, one
    :class:`Scan` per detector (each scans every whole image), and per view its image index,
    the rect it covers, its inner edges and the largest face kept from it
    (``FaceDetector._view_meta``)."""

    views: List[View]
    scans: List[Tuple[AnchorSpec, Scan]]
    image: np.ndarray
    rect: np.ndarray
    inner: np.ndarray
    largest: np.ndarray


class FaceDetector:
    """Batched face detector over :class:`FaceModels` (see module docstring for the steps).

    models: the loaded networks (``detect_short``/``detect_full``, ``infer`` on the host path,
    and ``device``). config: uses ``detector``, ``min_detection_score``, ``nms_iou``,
    ``max_faces`` and ``min_face_px`` (tiling).
    """

    def __init__(self, models, config: EngineConfig, host: Optional[bool] = None) -> None:
        """Keep the networks and build the anchors of the configured detectors on their device.

        host: run steps 1-4 in numpy (default on the CPU) instead of torch on the device.
        """
        self.models = models
        self.config = config
        self.device = torch.device(getattr(models, "device", "cpu"))
        self.specs: List[AnchorSpec] = {
            "short": [SHORT_RANGE], "full": [FULL_RANGE], "both": [SHORT_RANGE, FULL_RANGE],
        }[config.detector]
        #: the network that scans tiles: short range when configured (a third of the full
        #: range's cost for the same tile, docs/pipeline.md)
        self.tile_spec = self.specs[0]
        self.anchors = {s.name: generate_anchors(s, self.device) for s in self.specs}
        self.host = self.device.type == "cpu" if host is None else host
        self._anchors_px = {s.name: generate_anchors(s).numpy() * np.float32(s.input_size)
                            for s in self.specs}  # (A, 2) input px, host path
        self._plans: dict = {}
        self._scans: dict = {}  # image sizes -> _ScanPlan

    def tiles_for(self, width: int, height: int) -> List[Tile]:
        """The tiles scanned besides the whole image for this image size (cached per size)."""
        key = (width, height)
        if key not in self._plans:
            self._plans[key] = plan_tiles(width, height, self.config.min_face_px,
                                          self.tile_spec)
        return self._plans[key]

    def _forward(self, spec: AnchorSpec, batch: torch.Tensor):
        if spec.name == "short":
            return self.models.detect_short(batch)
        return self.models.detect_full(batch)

    def _views(self, sizes: Sequence[Tuple[int, int]]) -> List[View]:
        """(image index, rect, is_tile) of every area to scan; see :meth:`detect_frames`."""
        views: List[View] = []
        for b, (w, h) in enumerate(sizes):
            views.append((b, (0, 0, w, h), False))
            views += [(b, (int(t[0]), int(t[1]), int(t[2]), int(t[3])), True)
                      for t in self.tiles_for(w, h)]
        return views

    def _scan_plan(self, sizes: Tuple[Tuple[int, int], ...]) -> _ScanPlan:
        """Views, per-detector scans and view metadata for images of ``sizes`` (cached)."""
        if sizes not in self._scans:
            views = self._views(sizes)
            scans = [(spec, plan_scan(views, [k for k, v in enumerate(views)
                                              if not v[2] or spec is self.tile_spec],
                                      spec.input_size)) for spec in self.specs]
            self._scans[sizes] = _ScanPlan(views, scans, *self._view_meta(views, sizes, scans))
        return self._scans[sizes]

    def _view_meta(self, views: Sequence[View], sizes: Sequence[Tuple[int, int]],
                   scans: Sequence[Tuple[AnchorSpec, Scan]]
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(V,) image index, (V, 4) rect xyxy each view covers (its scan's window), (V, 4)
        inner-edge flags and (V,) largest face (box side, px) kept from each view: unbounded
        for a whole image; for a tile of side t twice the smallest face of the next coarser
        level (side 2t or the whole image), which finds the larger ones whole (a tile sees them
        cut, or as parts taken for faces)."""
        img = np.array([v[0] for v in views], dtype=np.int64)
        nominal = np.array([v[1] for v in views], dtype=np.float32).reshape(-1, 4)
        rect = nominal.copy()
        for _, scan in scans:
            rect[scan.views] = scan.rect
        wh = np.array([sizes[v[0]] for v in views], dtype=np.float32).reshape(-1, 2)
        inner = np.stack([nominal[:, 0] > 0, nominal[:, 1] > 0, nominal[:, 2] < wh[:, 0],
                          nominal[:, 3] < wh[:, 1]], 1)
        ratio = self.tile_spec.min_face_px / self.tile_spec.input_size
        side = np.maximum(nominal[:, 2] - nominal[:, 0], nominal[:, 3] - nominal[:, 1])
        largest = np.where([v[2] for v in views],
                           2.0 * ratio * np.minimum(2.0 * side, wh.max(1)), np.inf)
        return img, rect, inner, largest.astype(np.float32)

    def _candidates_host(self, imgs: Sequence[np.ndarray], plan: _ScanPlan) -> np.ndarray:
        """Steps 1-4 on the host: (K, 18) rows of 8 points (16), score, image index."""
        thr = self.config.min_detection_score
        rows = [np.zeros((0, 18), np.float32)]
        for spec, scan in plan.scans:
            batch = _letterbox_host(imgs, scan, spec.input_size)  # (V, S, S, 3)
            raw_boxes, logits = self.models.infer(spec.name, batch)  # (V, A, 16), (V, A)
            scores = 0.5 + 0.5 * np.tanh(0.5 * np.clip(logits, -SCORE_CLIP, SCORE_CLIP))  # sigmoid
            b_idx, a_idx = np.nonzero(scores >= thr)
            raw = raw_boxes[b_idx, a_idx].reshape(-1, 8, 2)  # (K, 8, 2) only the candidates
            anchor = self._anchors_px[spec.name][a_idx][:, None]  # (K, 1, 2)
            centre = raw[:, 0:1] + anchor
            half = raw[:, 1:2] * 0.5
            pts = np.concatenate([centre - half, centre + half, raw[:, 2:] + anchor], 1)
            lbk = scan.params[b_idx].astype(np.float32)  # (K, 4)
            view = scan.views[b_idx]  # (K,) view of each candidate
            pts = (pts - lbk[:, None, 2:]) * lbk[:, None, :2] + plan.rect[view, None, :2]
            valid = (pts[:, 1] > pts[:, 0]).all(-1)
            valid &= ~_cut_by_tile(pts[:, :2].reshape(-1, 4), plan.rect[view],
                                   plan.inner[view], plan.largest[view])
            rows.append(np.concatenate([pts[valid].reshape(-1, 16),
                                        scores[b_idx, a_idx][valid, None],
                                        plan.image[view][valid, None].astype(np.float32)], 1))
        return np.concatenate(rows).astype(np.float32)

    @torch.inference_mode()
    def detect_frames(self, images: Sequence[torch.Tensor]) -> DetectionBatch:
        """Detect faces in every image, whole and in its tiles (module docstring); the full
        result.

        images: each (3, H, W) float32 (or uint8) RGB 0..255 on the models' device; sizes may
        differ.
        """
        if len(images) == 0:
            return DetectionBatch([], [], [])
        # Validated before the plan, which reads their sizes.
        hosts = [host_image(img, i) for i, img in enumerate(images)] if self.host else []
        imgs = [] if self.host else [check_image(img, i, self.device)
                                     for i, img in enumerate(images)]
        plan = self._scan_plan(tuple((int(img.shape[2]), int(img.shape[1]))
                                     for img in images))
        n_tiles = [sum(1 for v in plan.views if v[0] == b and v[2]) for b in range(len(images))]
        if self.host:
            return self._merge(self._candidates_host(hosts, plan), len(hosts), n_tiles)
        thr = self.config.min_detection_score
        cand_pts, cand_scores, cand_view = [], [], []
        for spec, scan in plan.scans:
            batch = _letterbox(imgs, scan, spec.input_size)  # (V, 3, S, S)
            raw_boxes, raw_scores = self._forward(spec, batch)
            pts, scores = _decode(raw_boxes, raw_scores, self.anchors[spec.name],
                                  spec.input_size)  # (V, A, 8, 2), (V, A)
            lbt = torch.as_tensor(scan.params, dtype=torch.float32, device=self.device)
            origin = torch.as_tensor(plan.rect[scan.views, :2], device=self.device)  # (V, 2)
            pts = ((pts - lbt[:, None, None, 2:]) * lbt[:, None, None, :2]
                   + origin[:, None, None])  # image px
            valid = (scores >= thr) & (pts[:, :, 1] > pts[:, :, 0]).all(-1)  # (V, A)
            b_idx, a_idx = torch.nonzero(valid, as_tuple=True)
            cand_pts.append(pts[b_idx, a_idx])  # (K, 8, 2)
            cand_scores.append(scores[b_idx, a_idx])  # (K,)
            cand_view.append(torch.as_tensor(scan.views, device=self.device)[b_idx])
        # One transfer of all candidates of all images, views and detectors.
        packed = torch.cat([torch.cat(cand_pts).reshape(-1, 16), torch.cat(cand_scores)[:, None],
                            torch.cat(cand_view)[:, None].float()], dim=1).cpu().numpy()
        view = packed[:, 17].astype(np.int64)
        cut = _cut_by_tile(packed[:, :4], plan.rect[view], plan.inner[view],
                           plan.largest[view])
        packed = packed[~cut]
        packed[:, 17] = plan.image[view[~cut]]
        return self._merge(packed, len(imgs), n_tiles)

    def detect_batch(self, images: Sequence[torch.Tensor]) -> List[List[Detection]]:
        """Detect faces in every image (whole image and its tiles).

        images: each (3, H, W) float32 (or uint8) RGB 0..255 on the models' device; sizes may
        differ. Returns per image a list of :class:`Detection` (box xyxy px, score, keypoints
        (6, 2) px), best score first, at most ``config.max_faces`` (:meth:`detect_frames`
        also says how many more were found).
        """
        return self.detect_frames(images).faces

    def _merge(self, packed: np.ndarray, num_images: int, n_tiles: List[int]
               ) -> DetectionBatch:
        """Step 5-6 on (K, 18) candidate rows (8 points, score, image index) per image."""
        results: List[List[Detection]] = []
        dropped: List[int] = []
        cap = self.config.max_faces
        for b in range(num_images):
            rows = packed[packed[:, 17] == b]
            merged, sc = weighted_nms(rows[:, :16].reshape(-1, 8, 2), rows[:, 16],
                                      self.config.nms_iou, max(len(rows), 1))
            merged, sc = _drop_nested(merged, sc)
            dropped.append(max(0, len(sc) - cap))
            results.append([
                Detection(box=m[:2].reshape(4).astype(np.float32), score=float(s),
                          keypoints=m[2:].astype(np.float32))
                for m, s in zip(merged[:cap], sc[:cap])
            ])
        return DetectionBatch(results, dropped, n_tiles)

    def detect(self, image: torch.Tensor) -> List[Detection]:
        """Single-image wrapper of :meth:`detect_batch`."""
        return self.detect_batch([image])[0]
