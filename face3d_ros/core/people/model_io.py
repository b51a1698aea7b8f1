"""Enrolled face models on disk: the ``.npz`` model file and OBJ / binary glTF exports.

The model file (``FORMAT_VERSION`` 1) is one numpy ``.npz`` archive that the node reloads at
start, so an enrolled person keeps their shape, texture and id across restarts:

| key | content |
|---|---|
| ``format`` | the string ``"face3d-model"`` |
| ``version`` | int, :data:`FORMAT_VERSION` |
| ``name``, ``face_id`` | the person's name (str) and id (int) |
| ``vertices`` | (478, 3) float32 m, face frame (x out, y subject's left, z up): identity |
| ``metric_vertices`` | (478, 3) float32 m, face frame: the shape in true perspective (optional) |
| ``triangles`` | (F, 3) int32 indices < 468, counter-clockwise seen from the front |
| ``uv`` | (468, 2) float32 in [0, 1], v up |
| ``texture_png`` | the RGB texture atlas as PNG bytes (uint8 array) |
| ``coverage_keys``, ``coverage_values`` | fractions of the texture atlas by source |
| ``view_names``, ``view_coverage`` | the enrolment views and the fraction of the atlas each saw |

``metric_vertices`` came after format 1's first files; a file without it loads with
``vertices`` in its place.

Exports: :func:`export_obj` (OBJ + MTL + PNG, face frame, metres) and :func:`export_glb`
(binary glTF 2.0 with the embedded texture, glTF axes: +Y up, +Z out of the face, +X the
subject's left). :func:`triangle_list` gives coloured triangle soup for RViz TRIANGLE_LIST
markers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import cv2
import numpy as np

from ..types import NUM_LANDMARKS, NUM_MESH

FORMAT_NAME = "face3d-model"
FORMAT_VERSION = 1

#: Face frame (x out of the face, y left, z up) -> glTF (X left, Y up, Z out of the face).
FACE_TO_GLTF = np.array([[0.0, 1.0, 0.0],
                         [0.0, 0.0, 1.0],
                         [1.0, 0.0, 0.0]])


class ModelFileError(ValueError):
    """A model file that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class FaceModel:
    """One enrolled person: identity shape, topology, UVs and texture atlas.

    name: display name. face_id: the person's persistent id (>= 0, or -1 when none).
    vertices: (478, 3) float32 metres in the face frame, neutral expression as far as the
    views allowed (468 mesh vertices, then the two irises as in ``core.types``): the identity
    shape, in the image's own proportions as identities compare it
    (``enrollment.face_frame_points``: no focal length changes it).
    metric_vertices: the same face in true perspective (each view's ``landmarks_3d``, every
    point on its own camera ray), the shape exports and markers show
    (:attr:`display_vertices`); None for a model that has none (files written before it).
    triangles: (F, 3) int32. uv: (468, 2) float32 in [0, 1], v up.
    texture: (H, W, 3) uint8 RGB atlas; texel row 0 is v = 1.
    coverage: source -> fraction of the face part of the atlas ("seen", "mirrored", "filled").
    view_names / view_coverage: the views used and the fraction of the atlas each saw.
    """

    name: str
    face_id: int
    vertices: np.ndarray
    triangles: np.ndarray
    uv: np.ndarray
    texture: np.ndarray
    coverage: Dict[str, float] = field(default_factory=dict)
    view_names: Tuple[str, ...] = ()
    view_coverage: Tuple[float, ...] = ()
    metric_vertices: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        """Check shapes and types; raise ValueError naming the field that is wrong."""
        v, t, uv, tex = self.vertices, self.triangles, self.uv, self.texture
        if v.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"vertices must be (478, 3), got {v.shape}")
        mv = self.metric_vertices
        if mv is not None and mv.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"metric_vertices must be (478, 3) or None, got {mv.shape}")
        if t.ndim != 2 or t.shape[1] != 3 or t.size == 0:
            raise ValueError(f"triangles must be (F, 3) with F > 0, got {t.shape}")
        if int(t.min()) < 0 or int(t.max()) >= NUM_MESH:
            raise ValueError("triangle indices must lie in [0, 468)")
        if uv.shape != (NUM_MESH, 2):
            raise ValueError(f"uv must be (468, 2), got {uv.shape}")
        if tex.ndim != 3 or tex.shape[2] != 3 or tex.dtype != np.uint8:
            raise ValueError(f"texture must be (H, W, 3) uint8, got {tex.shape} {tex.dtype}")
        if len(self.view_names) != len(self.view_coverage):
            raise ValueError("view_names and view_coverage must have the same length")

    @property
    def display_vertices(self) -> np.ndarray:
        """(478, 3) metres: :attr:`metric_vertices`, else :attr:`vertices`."""
        return self.vertices if self.metric_vertices is None else self.metric_vertices

    @property
    def mesh_vertices(self) -> np.ndarray:
        """(468, 3) metres, the mesh part of :attr:`display_vertices` (exports, markers)."""
        return self.display_vertices[:NUM_MESH]


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("could not encode the texture as PNG")
    return buf.tobytes()


def save_model(path: Union[str, Path], model: FaceModel) -> Path:
    """Write ``model`` to ``path`` (``.npz`` appended when missing); returns the path."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    p.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(model.coverage)
    arrays: Dict[str, np.ndarray] = dict(
        format=np.array(FORMAT_NAME), version=np.array(FORMAT_VERSION),
        name=np.array(model.name), face_id=np.array(int(model.face_id)),
        vertices=model.vertices.astype(np.float32),
        triangles=model.triangles.astype(np.int32), uv=model.uv.astype(np.float32),
        texture_png=np.frombuffer(_png_bytes(model.texture), dtype=np.uint8),
        coverage_keys=np.array(keys, dtype=str),
        coverage_values=np.array([model.coverage[k] for k in keys], dtype=np.float64),
        view_names=np.array(model.view_names, dtype=str),
        view_coverage=np.array(model.view_coverage, dtype=np.float64))
    if model.metric_vertices is not None:
        arrays["metric_vertices"] = model.metric_vertices.astype(np.float32)
    with open(p, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # (numpy stubs: allow_pickle)
    return p


def load_model(path: Union[str, Path]) -> FaceModel:
    """Read a model file written by :func:`save_model`.

    Raises :class:`ModelFileError` for a missing, foreign, newer or damaged file.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such model file (enrol first with face3d-enroll or the "
                             "people node's EnrollFace action)")
    try:
        with np.load(p, allow_pickle=False) as d:
            if "format" not in d or str(d["format"]) != FORMAT_NAME:
                raise ModelFileError(f"{p}: not a face3d model file (no '{FORMAT_NAME}' tag)")
            version = int(d["version"])
            if version > FORMAT_VERSION:
                raise ModelFileError(f"{p}: model format version {version} is newer than this "
                                     f"face3d_ros reads ({FORMAT_VERSION}); update face3d_ros")
            tex = cv2.imdecode(d["texture_png"], cv2.IMREAD_COLOR)
            if tex is None:
                raise ModelFileError(f"{p}: the texture PNG is damaged; enrol again")
            return FaceModel(
                name=str(d["name"]), face_id=int(d["face_id"]),
                vertices=d["vertices"].astype(np.float32),
                triangles=d["triangles"].astype(np.int32), uv=d["uv"].astype(np.float32),
                texture=cv2.cvtColor(tex, cv2.COLOR_BGR2RGB),
                coverage={str(k): float(v) for k, v in zip(d["coverage_keys"],
                                                           d["coverage_values"])},
                view_names=tuple(str(s) for s in d["view_names"]),
                view_coverage=tuple(float(c) for c in d["view_coverage"]),
                metric_vertices=(d["metric_vertices"].astype(np.float32)
                                 if "metric_vertices" in d else None))
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{p}: cannot read the model file ({exc}); enrol again") from exc


def with_vertices(model: FaceModel, vertices: np.ndarray) -> FaceModel:
    """A copy of ``model`` with other vertices (478, 3) m (e.g. with an expression applied);
    its ``metric_vertices``, where it has them, moved by the same displacement (the
    perspective correction kept as it was: right for a displacement such as an expression,
    not for a rescaled or re-posed shape)."""
    v = np.asarray(vertices, dtype=np.float32)
    metric = (None if model.metric_vertices is None
              else (model.metric_vertices + (v - model.vertices)).astype(np.float32))
    return FaceModel(model.name, model.face_id, v, model.triangles, model.uv, model.texture,
                     dict(model.coverage), model.view_names, model.view_coverage, metric)


def export_obj(model: FaceModel, out_dir: Union[str, Path], name: str = "") -> Path:
    """Write ``NAME.obj``, ``NAME.mtl`` and ``NAME.png`` (texture) into ``out_dir``.

    The 468 mesh vertices in metres in the face frame, one texture coordinate per vertex.
    ``name`` defaults to the model's name. Returns the OBJ path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe_stem(name or model.name)
    png = out / f"{stem}.png"
    if not cv2.imwrite(str(png), cv2.cvtColor(model.texture, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {png}")
    (out / f"{stem}.mtl").write_text(
        f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {stem}.png\n")
    lines = [f"# face3d model '{model.name}' id {model.face_id}, metres, face frame "
             "(x out of the face, y subject's left, z up)", f"mtllib {stem}.mtl", f"o {stem}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in model.mesh_vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in model.uv]
    lines.append("usemtl face")
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in model.triangles.astype(np.int64) + 1]
    obj = out / f"{stem}.obj"
    obj.write_text("\n".join(lines) + "\n")
    return obj


def export_glb(model: FaceModel, path: Union[str, Path]) -> Path:
    """Write a binary glTF 2.0 file (mesh, UVs, embedded PNG texture); returns the path.

    Axes are glTF's (+Y up, +Z out of the face, +X the subject's left), metres. Needs trimesh
    (and Pillow, which it uses for the texture).
    """
    try:
        import trimesh
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("glTF export needs trimesh and Pillow: pip install trimesh pillow "
                          "(or run scripts/setup.sh)") from exc
    p = Path(path)
    if p.suffix != ".glb":
        p = p.with_name(p.name + ".glb")
    p.parent.mkdir(parents=True, exist_ok=True)
    verts = model.mesh_vertices.astype(np.float64) @ FACE_TO_GLTF.T
    visual = trimesh.visual.TextureVisuals(uv=model.uv.astype(np.float64),
                                           image=Image.fromarray(model.texture))
    mesh = trimesh.Trimesh(vertices=verts, faces=model.triangles.astype(np.int64),
                           visual=visual, process=False)
    p.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh)))
    return p


def vertex_colours(model: FaceModel) -> np.ndarray:
    """(468, 3) float32 RGB in [0, 1]: the texture sampled at each vertex's UV."""
    h, w = model.texture.shape[:2]
    col = np.clip(np.rint(model.uv[:, 0] * w - 0.5), 0, w - 1).astype(np.int64)
    row = np.clip(np.rint((1.0 - model.uv[:, 1]) * h - 0.5), 0, h - 1).astype(np.int64)
    return model.texture[row, col].astype(np.float32) / 255.0


def triangle_list(model: FaceModel, vertices: np.ndarray | None = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Triangle soup for an RViz TRIANGLE_LIST marker: points (3F, 3) m, colours (3F, 3) RGB
    in [0, 1] (per corner, from the texture). ``vertices`` (478 or 468, 3) overrides the
    model's (e.g. posed in the camera frame)."""
    v = model.mesh_vertices if vertices is None else np.asarray(vertices)[:NUM_MESH]
    idx = model.triangles.reshape(-1)
    return v[idx].astype(np.float32), vertex_colours(model)[idx]


def texture_png_bytes(model: FaceModel) -> bytes:
    """The texture atlas encoded as PNG."""
    return _png_bytes(model.texture)


def _safe_stem(name: str) -> str:
    stem = "".join(ch if (ch.isalnum() or ch in "-_.") else "_" for ch in name).strip("._")
    return stem or "face"


__all__ = ["FaceModel", "ModelFileError", "FORMAT_VERSION", "save_model", "load_model",
           "export_obj", "export_glb", "triangle_list", "vertex_colours", "with_vertices",
           "texture_png_bytes"]
