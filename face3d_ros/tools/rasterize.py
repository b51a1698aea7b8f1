"""A small z-buffer triangle rasteriser for pinhole cameras (torch on the CPU, vectorised).

Pixels follow the project's image convention: the origin is the top-left corner of the top-left
pixel, x right, y down, so pixel (row i, column j) is sampled at its centre (j + 0.5, i + 0.5).
Points are in the camera optical frame (x right, y down, z forward), metres.

Steps of :func:`rasterize`:

1. project the vertices, drop triangles behind the near plane, facing away from the camera
   (``cull_back``) or outside the image;
2. sort the triangles by the size of their pixel bounding box and cut them into chunks of
   similar size, each chunk testing a fixed grid of candidate pixels per triangle (no Python
   loop per triangle);
3. per candidate pixel inside its triangle, the perspective-correct depth, packed with the
   triangle index into one int64 key (depth in micrometres, index in the low bits): the
   per-pixel minimum (``scatter_reduce``) is the z-buffer and names the visible triangle;
4. for each covered pixel, the perspective-correct barycentric coordinates of its triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_INDEX_BITS = 23  # up to 8,388,607 triangles per call
_EMPTY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class Fragments:
    """Visible surface per pixel.

    triangle: (H, W) int64 index into the faces given, -1 where no triangle covers the pixel.
    bary: (H, W, 3) float32 perspective-correct barycentric coordinates of the pixel centre in
    its triangle (0 where empty). depth: (H, W) float32 camera z in metres (inf where empty).
    """

    triangle: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a triangle covers the pixel."""
        return self.triangle >= 0


def project(points: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(N, 2) pixel coordinates of camera-frame points (N, 3) m (z > 0)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack((fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy), axis=-1)


def orient_outward(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(F, 3) faces re-wound so that each geometric normal agrees with its vertex normals.

    Some exported meshes mix clockwise and counter-clockwise triangles (the material is
    double-sided); culling needs one winding.
    """
    f = np.asarray(faces).copy()
    v = np.asarray(vertices, dtype=np.float64)
    geo = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    flip = (geo * np.asarray(normals)[f].sum(axis=1)).sum(axis=1) < 0
    f[flip] = f[flip][:, [0, 2, 1]]
    return f


def rasterize(points: np.ndarray, faces: np.ndarray, fx: float, fy: float, cx: float,
              cy: float, width: int, height: int, cull_back: bool = True, near: float = 1e-3,
              max_candidates: int = 1 << 21) -> Fragments:
    """Z-buffer the triangles ``faces`` (F, 3) of ``points`` (V, 3) m, camera optical frame.

    Faces wind counter-clockwise seen from outside (see :func:`orient_outward`): with
    ``cull_back`` those whose outward normal points away from the camera are skipped. Triangles
    with a vertex nearer than ``near`` m are skipped (no clipping). ``max_candidates`` bounds
    the pixels tested at once (memory).
    """
    pts = torch.as_tensor(np.asarray(points, dtype=np.float64))
    tri = torch.as_tensor(np.asarray(faces, dtype=np.int64))
    n_pix = width * height
    zbuf = torch.full((n_pix,), _EMPTY, dtype=torch.int64)
    if len(tri):
        p = pts[tri]  # (F, 3, 3) corners
        keep = (p[..., 2] > near).all(dim=1)
        if cull_back:
            normal = torch.linalg.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
            keep &= (normal * p[:, 0]).sum(-1) < 0.0
        ids = torch.nonzero(keep).squeeze(1)
        p = p[ids]
        z = p[..., 2]  # (F', 3)
        uv = torch.stack((fx * p[..., 0] / z + cx, fy * p[..., 1] / z + cy), dim=-1)  # (F', 3, 2)
        lo = torch.ceil(uv.amin(dim=1) - 0.5).clamp_min(0).long()  # first pixel centre inside
        hi = torch.floor(uv.amax(dim=1) - 0.5).long()
        hi[:, 0].clamp_(max=width - 1)
        hi[:, 1].clamp_(max=height - 1)
        size = hi - lo + 1  # (F', 2) columns, rows
        ok = (size > 0).all(dim=1)
        ids, uv, z, lo, size = ids[ok], uv[ok], z[ok], lo[ok], size[ok]
        side = size.amax(dim=1)
        order = torch.argsort(side)
        ids, uv, z, lo, size, side = (a[order] for a in (ids, uv, z, lo, size, side))
        start, count = 0, len(ids)
        while start < count:
            # largest chunk whose square candidate grids stay within max_candidates
            k = torch.arange(start, count)
            cost = (k - start + 1) * side[start:].pow(2)
            stop = start + max(1, int(torch.searchsorted(cost, max_candidates, right=True)))
            _splat(zbuf, ids[start:stop], uv[start:stop], z[start:stop], lo[start:stop],
                   size[start:stop], width)
            start = stop
    covered = zbuf != _EMPTY
    triangle = torch.full((n_pix,), -1, dtype=torch.int64)
    triangle[covered] = zbuf[covered] & ((1 << _INDEX_BITS) - 1)
    bary = torch.zeros((n_pix, 3), dtype=torch.float64)
    depth = torch.full((n_pix,), float("inf"), dtype=torch.float64)
    pix = torch.nonzero(covered).squeeze(1)
    if len(pix):
        t = triangle[pix]
        p = pts[tri[t]]  # (P, 3, 3)
        zc = p[..., 2]
        uv = torch.stack((fx * p[..., 0] / zc + cx, fy * p[..., 1] / zc + cy), dim=-1)
        x = (pix % width).double() + 0.5
        y = (pix // width).double() + 0.5
        b = _barycentric(uv, x, y)  # (P, 3) screen space
        b = b / zc
        s = b.sum(-1, keepdim=True)
        bary[pix] = b / s
        depth[pix] = 1.0 / s.squeeze(-1)
    return Fragments(triangle=triangle.reshape(height, width).numpy(),
                     bary=bary.reshape(height, width, 3).float().numpy(),
                     depth=depth.reshape(height, width).float().numpy())


def _barycentric(uv: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(..., 3) screen-space barycentrics of points (x, y) (...) in triangles uv (..., 3, 2)."""
    u0, v0 = uv[..., 0, 0], uv[..., 0, 1]
    u1, v1 = uv[..., 1, 0], uv[..., 1, 1]
    u2, v2 = uv[..., 2, 0], uv[..., 2, 1]
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    b1 = ((x - u0) * (v2 - v0) - (u2 - u0) * (y - v0)) / area
    b2 = ((u1 - u0) * (y - v0) - (x - u0) * (v1 - v0)) / area
    return torch.stack((1.0 - b1 - b2, b1, b2), dim=-1)


def _splat(zbuf: torch.Tensor, ids: torch.Tensor, uv: torch.Tensor, z: torch.Tensor,
           lo: torch.Tensor, size: torch.Tensor, width: int) -> None:
    """Write one chunk of triangles (same-sized candidate grids) into the packed z-buffer."""
    side = int(size.amax())
    off = torch.arange(side)
    # float32 edge functions relative to each bounding box corner (small numbers)
    base = lo.to(torch.float32) + 0.5  # (n, 2) centre of the first candidate pixel
    q = (uv.to(torch.float32) - base[:, None])  # (n, 3, 2)
    u0, v0, u1, v1, u2, v2 = (q[:, k // 2, k % 2, None, None] for k in range(6))
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    area = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    x = off.to(torch.float32)[None, None, :]  # (1, 1, S)
    y = off.to(torch.float32)[None, :, None]  # (1, S, 1)
    b1 = ((x - u0) * (v2 - v0) - (u2 - u0) * (y - v0)) / area  # (n, S, S)
    b2 = ((u1 - u0) * (y - v0) - (x - u0) * (v1 - v0)) / area
    b0 = 1.0 - b1 - b2
    eps = -1e-6
    inside = (b0 >= eps) & (b1 >= eps) & (b2 >= eps)
    inside &= (off[None, None, :] < size[:, 0, None, None]) & (
        off[None, :, None] < size[:, 1, None, None])
    cand = torch.nonzero(inside)  # (C, 3) triangle, row offset, column offset
    owner = cand[:, 0]
    inv = (1.0 / z).to(torch.float64)[owner]  # (C, 3)
    inv_z = (b0[inside].double() * inv[:, 0] + b1[inside].double() * inv[:, 1]
             + b2[inside].double() * inv[:, 2])  # perspective-correct 1 / depth
    key = (torch.round(1e6 / inv_z).long() << _INDEX_BITS) | ids[owner]
    flat = (lo[owner, 1] + cand[:, 1]) * width + lo[owner, 0] + cand[:, 2]
    zbuf.scatter_reduce_(0, flat, key, reduce="amin", include_self=True)
