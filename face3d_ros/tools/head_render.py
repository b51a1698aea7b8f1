"""Renders of real head models with exact truth: head pose, gaze, blendshape weights.

    python -m face3d_ros.tools.head_render --head facecap --yaw 30 --eye-yaw 15 \
        --blend jawOpen=0.5 -o out.png          # writes out.png and out.json (the truth)

Heads (glTF binaries in the heads folder: ``FACE3D_HEADS_DIR``, else ``shared/data/heads``
beside the repository; see NOTES.md and CREDITS.md there):

* ``facecap``: ``facecap_plain.glb``, a textured head with the 52 ARKit blendshapes (``_L`` is
  the subject's left), teeth and two eyeballs. The capture's rest rotation (node
  ``grp_transform``) is removed, which leaves the head mirror-symmetric with level eyes. Scaled
  to real size by its eyeball centres, 63 mm apart (its outer eye corners are then 90.0 mm
  apart). Origin: the midpoint of the two eyeball centres. The eyeball nodes ``eyeLeft`` and
  ``eyeRight`` are named the other way round; sides here come from geometry.
* ``lps``: ``LeePerrySmith.glb``, a head scan with closed eyes and no texture (drawn in a plain
  skin colour); head pose only. Scaled so its outer eye corners are 92 mm apart. Origin: the
  midpoint of its outer eye corners moved by the offset facecap has from that midpoint to its
  eyeball centres (9.1 mm back into the head, 1.5 mm up), so both origins sit between the
  eyeball centres.

Face frame (REP-155, as ``face3d_ros.core.types``): x out of the face, y to the subject's
left, z up, metres. Zero rotation is each model's own upright frontal orientation (glTF: +z
front, +y up, +x the model's left). Outer eye corner vertices (head mesh indices, subject's
right then left): facecap (1206, 1744), lps see :data:`OUTER_EYE_CORNERS`.

Gaze (facecap): the model's eyeballs are stylised (18.4 mm radius). An anatomical eyeball of
12 mm radius is drawn inside each, touching it at its front-most point, with an 11.8 mm iris
and a 3.5 mm pupil on its optical axis; it turns about its centre by the eye yaw (> 0 towards
the subject's left) and pitch (> 0 down), both relative to the head. The model's own eyeball
is drawn as sclera that writes no depth: the head (lids) and the small eyeball cover it. The
lids follow the gaze: ``eyeLook{Up,Down,In,Out}_{L,R}`` get min(|angle| / 25 deg, 1), added to
the caller's weights and clamped to [0, 1].

The glTF files are read with json + numpy (a GLB is a 12-byte header, a JSON chunk and a
binary chunk): trimesh drops morph targets, and the few accessors used here need no library.

Steps of :func:`render`:

1. blendshape weights (caller's + gaze-coupled lids) morph the head, which is posed in the
   camera frame by ``camera_R_face`` and ``translation``;
2. three layers are z-buffered at ``supersample`` times the resolution: head + teeth (back
   faces culled), the model's eyeballs (sclera), and the small eyeballs (ray-sphere, exact);
3. per pixel the head wins unless the sclera lies in front of it by more than a lid's
   thickness, then the small eyeball wins over the sclera;
4. textures (bilinear), Lambert + ambient shading of up to 3 directional lights, background;
5. downscale (``cv2.INTER_AREA``) and the truth: pose, weights, eyes, projected vertices.

One module (over 400 lines): loading the glTF heads, posing them, shading, the eye model and
the truth it writes are one renderer; the rasteriser itself is ``tools.rasterize``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from face3d_ros.core.pipeline.geometry import (direction_angles, euler_from_rotation,
                                               line_of_sight_frame)
from face3d_ros.core.types import CameraIntrinsics
from face3d_ros.tools.rasterize import Fragments, orient_outward, project, rasterize

HEADS_ENV = "FACE3D_HEADS_DIR"
DEFAULT_HEADS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "heads"
HEAD_FILES = {"facecap": "facecap_plain.glb", "lps": "LeePerrySmith.glb"}

#: Outer eye corners, head mesh vertex indices (subject's right, subject's left).
OUTER_EYE_CORNERS = {"facecap": (1206, 1744), "lps": (5189, 495)}

EYEBALL_CENTRE_DISTANCE_M = 0.063  # facecap, between its eyeball centres
LPS_EYE_CORNER_DISTANCE_M = 0.092
EYEBALL_RADIUS_M = 0.012  # the small (anatomical) eyeball that carries the iris
IRIS_RADIUS_M = 0.0059
PUPIL_RADIUS_M = 0.00175
LID_GAZE_FULL_DEG = 25.0  # eye angle at which eyeLook* reaches 1
LID_TOLERANCE_M = 0.004  # the head covers the sclera unless it lies this far behind it

#: Lights: (direction towards the light in the camera frame, intensity); symmetric left/right.
DEFAULT_LIGHTS: Tuple[Tuple[Tuple[float, float, float], float], ...] = (
    ((0.0, -0.35, -1.0), 0.55), ((-0.7, -0.3, -1.0), 0.15), ((0.7, -0.3, -1.0), 0.15))
DEFAULT_AMBIENT = 0.35
SKIN_TINT = (1.22, 1.0, 0.86)  # facecap's texture is grey: multiplied into the head's colour
LPS_SKIN = (0.80, 0.62, 0.52)
SCLERA = (0.93, 0.91, 0.88)
IRIS_COLOURS = {"brown": (0.36, 0.21, 0.11), "blue": (0.38, 0.47, 0.55)}

# glTF (x model's left, y up, z front) -> face frame (x front, y left, z up)
_GLTF_TO_FACE = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
_COMPONENT = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}

Background = Union[Tuple[int, int, int], Tuple[Tuple[int, int, int], Tuple[int, int, int]],
                   np.ndarray]


# --------------------------------------------------------------------------------------------
# Head models


@dataclass(frozen=True)
class Mesh:
    """Triangle mesh in the face frame: vertices, normals (V, 3) m; faces (F, 3) wound
    outward; uv (V, 2) glTF texture coordinates (v down), or None."""

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    uv: Optional[np.ndarray]


@dataclass(frozen=True)
class HeadModel:
    """A head in the face frame (metres), neutral.

    head: the skin mesh (its vertex indices are those of the truth). morph_names: (K,) target
    names; morph_positions, morph_normals: (K, V, 3) offsets of the head mesh per unit weight.
    teeth: drawn with the head, or None. eyeballs: the model's own eyeballs (right, left), drawn
    as sclera, or None (closed eyes). eyeball_centres: (2, 3) their centres, eyeball_radius m.
    texture: (H, W, 3) uint8 RGB base colour, or None (then ``colour``, RGB in [0, 1]).
    outer_eye_corners: head vertex indices (right, left).
    """

    name: str
    head: Mesh
    morph_names: Tuple[str, ...]
    morph_positions: np.ndarray
    morph_normals: np.ndarray
    teeth: Optional[Mesh]
    eyeballs: Optional[Tuple[Mesh, Mesh]]
    eyeball_centres: Optional[np.ndarray]
    eyeball_radius: float
    texture: Optional[np.ndarray]
    colour: Tuple[float, float, float]
    outer_eye_corners: Tuple[int, int]

    @property
    def has_eyes(self) -> bool:
        """True when the head has open eyes with gaze truth."""
        return self.eyeballs is not None

    def small_eye_centres(self) -> np.ndarray:
        """(2, 3) centres of the drawn anatomical eyeballs (right, left), face frame, m."""
        if self.eyeball_centres is None:
            raise ValueError(f"head {self.name!r} has no eyeballs")
        forward = np.array([self.eyeball_radius - EYEBALL_RADIUS_M, 0.0, 0.0])
        return self.eyeball_centres + forward


def heads_dir(path: Union[str, Path, None] = None) -> Path:
    """The heads folder: ``path``, else ``$FACE3D_HEADS_DIR``, else :data:`DEFAULT_HEADS_DIR`.

    Raises FileNotFoundError (naming the environment variable) when it does not exist.
    """
    chosen = Path(path) if path is not None else Path(
        os.environ.get(HEADS_ENV) or DEFAULT_HEADS_DIR)
    if not chosen.is_dir():
        raise FileNotFoundError(
            f"head models folder {chosen} not found: pass it, or set {HEADS_ENV} to the folder "
            f"holding {', '.join(sorted(HEAD_FILES.values()))}")
    return chosen


def _read_glb(path: Path) -> Tuple[dict, bytes]:
    """(glTF JSON, binary chunk) of a .glb file."""
    data = path.read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise ValueError(f"{path} is not a glTF 2.0 binary")
    length, kind = struct.unpack_from("<II", data, 12)
    if kind != 0x4E4F534A:
        raise ValueError(f"{path}: first chunk is not JSON")
    gltf = json.loads(data[20:20 + length])
    offset = 20 + length
    blob = b""
    if offset + 8 <= len(data):
        blen, _ = struct.unpack_from("<II", data, offset)
        blob = data[offset + 8:offset + 8 + blen]
    return gltf, blob


def _accessor(gltf: dict, blob: bytes, index: int) -> np.ndarray:
    """(count, width) float64 or int64 array of one accessor (strided views supported)."""
    acc = gltf["accessors"][index]
    if "sparse" in acc or "bufferView" not in acc:
        raise ValueError(f"accessor {index}: sparse or bufferless accessors are not supported")
    view = gltf["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_COMPONENT[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    stride = view.get("byteStride") or dtype.itemsize * width
    offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    arr = np.ndarray((acc["count"], width), dtype=dtype, buffer=blob, offset=offset,
                     strides=(stride, dtype.itemsize))
    if dtype.kind == "f":
        return arr.astype(np.float64)
    if acc.get("normalized"):
        return arr.astype(np.float64) / np.iinfo(dtype).max
    return arr.astype(np.int64)


def _quat_matrix(q: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation of a glTF quaternion x, y, z, w."""
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _mesh_matrices(gltf: dict, skip: Sequence[str] = ()) -> Dict[int, np.ndarray]:
    """{mesh index: (4, 4) world matrix} of the default scene, ignoring nodes named in skip."""
    out: Dict[int, np.ndarray] = {}

    def visit(index: int, parent: np.ndarray) -> None:
        node = gltf["nodes"][index]
        local = np.eye(4)
        if "matrix" in node:
            local = np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T
        else:
            local[:3, :3] = _quat_matrix(node.get("rotation", (0, 0, 0, 1))) @ np.diag(
                node.get("scale", (1, 1, 1)))
            local[:3, 3] = node.get("translation", (0, 0, 0))
        world = parent if node.get("name") in skip else parent @ local
        if "mesh" in node:
            out[node["mesh"]] = world
        for child in node.get("children", ()):
            visit(child, world)

    for root in gltf["scenes"][gltf.get("scene", 0)]["nodes"]:
        visit(root, np.eye(4))
    return out


def _primitive(gltf: dict, blob: bytes, mesh: int, world: np.ndarray) -> Tuple[
        np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray]:
    """(vertices, normals, faces, uv, linear map) of a mesh's first primitive in glTF world
    coordinates; the linear map (3, 3) takes mesh-local offsets (morph targets) to world."""
    prim = gltf["meshes"][mesh]["primitives"][0]
    if prim.get("mode", 4) != 4:
        raise ValueError(f"mesh {mesh}: only triangle lists are supported")
    attrs = prim["attributes"]
    lin = world[:3, :3]
    verts = _accessor(gltf, blob, attrs["POSITION"]) @ lin.T + world[:3, 3]
    normals = _accessor(gltf, blob, attrs["NORMAL"]) @ _normal_map(lin)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    faces = _accessor(gltf, blob, prim["indices"]).reshape(-1, 3)
    uv = _accessor(gltf, blob, attrs["TEXCOORD_0"]) if "TEXCOORD_0" in attrs else None
    return verts, normals, faces, uv, lin


def _normal_map(lin: np.ndarray) -> np.ndarray:
    """(3, 3) map of row-vector normals under the linear part ``lin``: inverse transpose,
    divided by the mean scale so that unit normals (and morph offsets) keep their size."""
    return np.linalg.inv(lin) * np.cbrt(abs(np.linalg.det(lin)))


def _to_face(points: np.ndarray, origin: np.ndarray, scale: float) -> np.ndarray:
    """glTF world points (N, 3) -> face frame metres."""
    return (points - origin) @ _GLTF_TO_FACE.T * scale


def _fit_sphere(points: np.ndarray) -> Tuple[np.ndarray, float]:
    """Least-squares sphere (centre (3,), radius) through points (N, 3)."""
    a = np.c_[2.0 * points, np.ones(len(points))]
    sol = np.linalg.lstsq(a, (points ** 2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def _load_facecap(path: Path) -> HeadModel:
    gltf, blob = _read_glb(path)
    names = {m: gltf["meshes"][m].get("extras", {}).get("targetNames") for m in range(4)}
    head_id = next(m for m, n in names.items() if n)
    mats = _mesh_matrices(gltf, skip=("grp_transform",))
    parts = {m: _primitive(gltf, blob, m, mats[m]) for m in mats}
    eye_ids = [m for m in parts if m != head_id and len(parts[m][0]) == 530]
    teeth_id = next(m for m in parts if m not in eye_ids and m != head_id)
    spheres = [_fit_sphere(parts[m][0]) for m in eye_ids]
    # sides by geometry: glTF +x is the model's left
    order = np.argsort([c[0] for c, _ in spheres])  # right eye (x < 0) first
    eye_ids = [eye_ids[i] for i in order]
    spheres = [spheres[i] for i in order]
    centres_w = np.stack([c for c, _ in spheres])
    origin = centres_w.mean(axis=0)
    scale = EYEBALL_CENTRE_DISTANCE_M / float(np.linalg.norm(centres_w[1] - centres_w[0]))

    def mesh(m: int) -> Mesh:
        v, n, f, uv, _ = parts[m]
        vf = _to_face(v, origin, scale)
        nf = n @ _GLTF_TO_FACE.T
        return Mesh(vf, nf, orient_outward(vf, f, nf), uv)

    head = mesh(head_id)
    prim = gltf["meshes"][head_id]["primitives"][0]
    lin = parts[head_id][4]
    dpos = np.stack([_accessor(gltf, blob, t["POSITION"]) for t in prim["targets"]])
    dnrm = np.stack([_accessor(gltf, blob, t["NORMAL"]) for t in prim["targets"]])
    dpos = dpos @ lin.T @ _GLTF_TO_FACE.T * scale  # (K, V, 3)
    dnrm = dnrm @ _normal_map(lin) @ _GLTF_TO_FACE.T
    image = gltf["images"][gltf["textures"][0]["source"]]
    view = gltf["bufferViews"][image["bufferView"]]
    png = np.frombuffer(blob, np.uint8, view["byteLength"], view.get("byteOffset", 0))
    texture = cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return HeadModel(
        name="facecap", head=head, morph_names=tuple(names[head_id]),
        morph_positions=dpos, morph_normals=dnrm, teeth=mesh(teeth_id),
        eyeballs=(mesh(eye_ids[0]), mesh(eye_ids[1])),
        eyeball_centres=_to_face(centres_w, origin, scale),
        eyeball_radius=float(np.mean([r for _, r in spheres])) * scale, texture=texture,
        colour=(1.0, 1.0, 1.0), outer_eye_corners=OUTER_EYE_CORNERS["facecap"])


#: facecap: eyeball-centre midpoint minus outer-eye-corner midpoint, face frame, metres.
_CORNERS_TO_EYEBALLS_M = np.array([-0.0091, 0.0, 0.0015])


def _load_lps(path: Path) -> HeadModel:
    gltf, blob = _read_glb(path)
    mats = _mesh_matrices(gltf)
    v, n, f, uv, _ = _primitive(gltf, blob, 0, mats[0])
    right, left = OUTER_EYE_CORNERS["lps"]
    scale = LPS_EYE_CORNER_DISTANCE_M / float(np.linalg.norm(v[left] - v[right]))
    vf = _to_face(v, 0.5 * (v[left] + v[right]), scale) - _CORNERS_TO_EYEBALLS_M
    nf = n @ _GLTF_TO_FACE.T
    head = Mesh(vf, nf, orient_outward(vf, f, nf), uv)
    empty = np.zeros((0, len(vf), 3))
    return HeadModel(
        name="lps", head=head, morph_names=(), morph_positions=empty, morph_normals=empty,
        teeth=None, eyeballs=None, eyeball_centres=None, eyeball_radius=0.0, texture=None,
        colour=LPS_SKIN, outer_eye_corners=(right, left))


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, folder: str) -> HeadModel:
    path = Path(folder) / HEAD_FILES[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (heads folder from {HEADS_ENV} or default)")
    return _load_facecap(path) if name == "facecap" else _load_lps(path)


def load_head(name: str = "facecap", folder: Union[str, Path, None] = None) -> HeadModel:
    """The head ``name`` ("facecap" or "lps") read from the heads folder (cached)."""
    if name not in HEAD_FILES:
        raise ValueError(f"unknown head {name!r}; choose from {sorted(HEAD_FILES)}")
    return _load_cached(name, str(heads_dir(folder).resolve()))


# --------------------------------------------------------------------------------------------
# Camera and pose helpers


def camera_from_fov(width: int = 640, height: int = 480,
                    hfov_deg: float = 60.0) -> CameraIntrinsics:
    """Pinhole intrinsics with the principal point at the image centre (exact: not assumed)."""
    return dataclasses.replace(CameraIntrinsics.from_fov(width, height, hfov_deg), assumed=False)


def camera_R_face_from_euler(yaw: float, pitch: float, roll: float,
                             translation: Sequence[float]) -> np.ndarray:
    """(3, 3) camera_R_face of a head at ``translation`` (3,) m turned by yaw, pitch, roll deg
    relative to facing the camera: intrinsic z-y-x angles from ``line_of_sight_frame``, so that
    ``core.pipeline.geometry.euler_from_rotation(R, translation)`` returns them."""
    from scipy.spatial.transform import Rotation

    ref = line_of_sight_frame(np.asarray(translation, dtype=np.float64)[None])[0]
    return ref @ Rotation.from_euler("ZYX", [yaw, pitch, roll], degrees=True).as_matrix()


def eye_corner_distance(head: HeadModel) -> float:
    """Distance (m) between the head's outer eye corners, neutral."""
    right, left = head.outer_eye_corners
    return float(np.linalg.norm(head.head.vertices[left] - head.head.vertices[right]))


def distance_for_size(pixels: float, fx: float, size_m: float) -> float:
    """Distance (m) at which an object ``size_m`` wide facing the camera is ``pixels`` wide."""
    return float(fx * size_m / pixels)


def distance_for_eye_corners(head: HeadModel, pixels: float, fx: float) -> float:
    """Distance (m) at which the outer eye corners of a frontal ``head`` are ``pixels`` apart.

    The engine's face box is about 1.5 (wide) and 1.75 (tall) times that on facecap, e.g.
    130 px -> a face box of about 200 x 230 px."""
    return distance_for_size(pixels, fx, eye_corner_distance(head))


# --------------------------------------------------------------------------------------------
# Truth


@dataclass(frozen=True)
class Truth:
    """Exact truth of one render. Camera optical frame (x right, y down, z forward), metres;
    pixels with the origin at the top-left corner of the image. Per-eye arrays: index 0 the
    subject's right eye, 1 the left (NaN, and visibility 0, for a head without eyes).

    intrinsics: fx, fy, cx, cy px, width, height. camera_R_face: (3, 3) columns = face x, y, z.
    translation: (3,) the face-frame origin (between the eyeball centres). yaw, pitch, roll:
    degrees relative to facing the camera (``core.pipeline.geometry.euler_from_rotation``).
    blendshapes: every weight as driven (caller's + gaze-coupled lids), clamped to [0, 1].
    eye_angles: (2, 2) yaw, pitch deg of each eye relative to the head. gaze_angles: (2, 2) yaw,
    pitch deg relative to looking into the camera (``core.pipeline.geometry.direction_angles``).
    eyeball_centres: (2, 3) centres of rotation. optical_axes: (2, 3) unit gaze directions.
    iris_centres: (2, 3) centre of the iris disc (10.45 mm along the axis), iris_centres_px
    (2, 2) its projection. pupil_centres: (2, 3) the drawn pupil's centre on the eyeball
    surface (12 mm along the axis), pupil_px (2, 2). pupil_visibility: (2,) fraction of the
    pupil disc not covered by lids or the head. vertices: (V, 3) the posed head mesh,
    vertices_px (V, 2), vertex_visible (V,) bool (in the image and passing the z-buffer).
    outer_eye_corners: head vertex indices (right, left).
    """

    head: str
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    camera_R_face: np.ndarray
    translation: np.ndarray
    yaw: float
    pitch: float
    roll: float
    blendshapes: Dict[str, float]
    eye_angles: np.ndarray
    gaze_angles: np.ndarray
    eyeball_centres: np.ndarray
    optical_axes: np.ndarray
    iris_centres: np.ndarray
    iris_centres_px: np.ndarray
    pupil_centres: np.ndarray
    pupil_px: np.ndarray
    pupil_visibility: np.ndarray
    vertices: np.ndarray = field(repr=False)
    vertices_px: np.ndarray = field(repr=False)
    vertex_visible: np.ndarray = field(repr=False)
    outer_eye_corners: Tuple[int, int] = (0, 0)

    @property
    def intrinsics(self) -> CameraIntrinsics:
        """The render's pinhole intrinsics."""
        return CameraIntrinsics(self.fx, self.fy, self.cx, self.cy, self.width, self.height)

    def to_dict(self, include_mesh: bool = False) -> dict:
        """JSON-ready dict (NaN -> None); the mesh arrays only with ``include_mesh``."""
        out: dict = {}
        for key, value in self.__dict__.items():
            if key in ("vertices", "vertices_px", "vertex_visible") and not include_mesh:
                continue
            if isinstance(value, np.ndarray):
                value = value.tolist()
            out[key] = _no_nan(value)
        return out


def _no_nan(value):
    if isinstance(value, float):
        return None if np.isnan(value) else value
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Rendering


def _eye_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) face_R_eye: z (up) by yaw, then y (left) by pitch; pitch > 0 turns x down."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("ZY", [yaw_deg, pitch_deg], degrees=True).as_matrix()


def gaze_lid_weights(eye_angles: np.ndarray) -> Dict[str, float]:
    """eyeLook* weights for per-eye (yaw, pitch) deg (2, 2) (right, left), relative to the
    head: min(|angle| / 25 deg, 1); looking to the subject's left is Out for the left eye and
    In for the right eye, pitch > 0 (down) is Down."""
    out: Dict[str, float] = {}
    for (yaw, pitch), side in zip(np.asarray(eye_angles, dtype=np.float64), ("R", "L")):
        h = min(abs(yaw) / LID_GAZE_FULL_DEG, 1.0)
        v = min(abs(pitch) / LID_GAZE_FULL_DEG, 1.0)
        toward_left = "Out" if side == "L" else "In"
        toward_right = "In" if side == "L" else "Out"
        out[f"eyeLook{toward_left if yaw > 0 else toward_right}_{side}"] = h
        out[f"eyeLook{'Down' if pitch > 0 else 'Up'}_{side}"] = v
    return {k: v for k, v in out.items() if v > 0.0}


def _background(background: Background, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]."""
    if isinstance(background, np.ndarray):
        img = background
        if img.shape[:2] != (height, width):
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        return img.astype(np.float32) / 255.0
    bg = np.asarray(background, dtype=np.float32) / 255.0
    if bg.shape == (3,):
        return np.broadcast_to(bg, (height, width, 3)).copy()
    t = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None, None]
    return np.broadcast_to((1.0 - t) * bg[0] + t * bg[1], (height, width, 3)).copy()


def _shade(normals: np.ndarray, lights, ambient: float) -> np.ndarray:
    """(N,) Lambert + ambient factor of unit normals (N, 3) that face the camera."""
    total = np.full(len(normals), ambient, dtype=np.float32)
    for direction, intensity in lights:
        d = np.asarray(direction, dtype=np.float32)
        d = d / np.linalg.norm(d)
        total += intensity * np.clip(normals @ d, 0.0, None)
    return total


def _surface(frag: Fragments, pix: np.ndarray, verts: np.ndarray, attrs: np.ndarray,
             faces: np.ndarray) -> np.ndarray:
    """Attributes (V, C) interpolated at flat pixel indices ``pix``."""
    tri = frag.triangle.reshape(-1)[pix]
    bary = frag.bary.reshape(-1, 3)[pix]
    return np.einsum("pk,pkc->pc", bary, attrs[faces[tri]])


def _sample(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, 3) float32 bilinear texture samples at glTF uv (N, 2) (repeat wrap)."""
    h, w = texture.shape[:2]
    n = len(uv)
    rows = -(-n // 4096)  # remap wants maps under 32767 wide: fold into rows of 4096
    maps = np.zeros((2, rows * 4096), dtype=np.float32)
    maps[0, :n] = uv[:, 0] * w - 0.5
    maps[1, :n] = uv[:, 1] * h - 0.5
    out = cv2.remap(texture, maps[0].reshape(rows, 4096), maps[1].reshape(rows, 4096),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return out.reshape(-1, 3)[:n].astype(np.float32) / 255.0


def _iris_colour(local: np.ndarray, colour: Tuple[float, float, float]) -> Tuple[
        np.ndarray, np.ndarray]:
    """Procedural iris on the small eyeball: (N, 3) albedo and (N,) iris mask in [0, 1] for
    points (N, 3) m in eye coordinates (x the optical axis)."""
    rho = np.hypot(local[:, 1], local[:, 2])
    front = local[:, 0] > 0
    phi = np.arctan2(local[:, 2], local[:, 1])
    aa = 0.00012  # edge softness, m

    def step(edge: float) -> np.ndarray:
        return np.clip((edge - rho) / aa + 0.5, 0.0, 1.0) * front

    iris = step(IRIS_RADIUS_M)
    pupil = step(PUPIL_RADIUS_M)
    r = (rho - PUPIL_RADIUS_M) / (IRIS_RADIUS_M - PUPIL_RADIUS_M)
    streaks = 0.82 + 0.1 * np.sin(phi * 37.0) * np.sin(phi * 11.0 + 1.3) + 0.08 * np.cos(
        phi * 73.0)
    radial = 1.1 - 0.35 * np.clip(r, 0.0, 1.0)
    limbus = 1.0 - 0.7 * np.clip((r - 0.78) / 0.22, 0.0, 1.0)
    base = np.asarray(colour, dtype=np.float32)[None] * (streaks * radial * limbus)[:, None]
    albedo = (1.0 - iris)[:, None] * np.asarray(SCLERA, dtype=np.float32) + (
        iris * (1.0 - pupil))[:, None] * base + pupil[:, None] * 0.02
    return albedo.astype(np.float32), iris


def render(head: Union[HeadModel, str], camera: CameraIntrinsics, camera_R_face: np.ndarray,
           translation: Sequence[float], blendshapes: Optional[Mapping[str, float]] = None,
           eye_yaw: float = 0.0, eye_pitch: float = 0.0,
           look_at: Optional[Sequence[float]] = None,
           lights: Sequence[Tuple[Sequence[float], float]] = DEFAULT_LIGHTS,
           ambient: float = DEFAULT_AMBIENT, background: Background = ((200, 205, 212),
                                                                       (120, 124, 130)),
           iris: str = "brown", supersample: int = 2,
           folder: Union[str, Path, None] = None) -> Tuple[np.ndarray, Truth]:
    """Render ``head`` and return (RGB uint8 image (H, W, 3), :class:`Truth`).

    camera_R_face: (3, 3) columns = face x, y, z in the camera optical frame (see
    :func:`camera_R_face_from_euler`). translation: (3,) m of the face-frame origin.
    blendshapes: ARKit weights by name (facecap). eye_yaw, eye_pitch: deg relative to the head
    (> 0 towards the subject's left / down), both eyes; or ``look_at`` (3,) m, a camera-frame
    point both eyes fixate (e.g. (0, 0, 0): eye contact). lights: up to 3 (direction towards
    the light in the camera frame, intensity). background: RGB, a (top, bottom) pair for a
    vertical gradient, or an RGB uint8 image. iris: "brown" or "blue". supersample: render at
    that many times the resolution, then average down.
    """
    model = load_head(head, folder) if isinstance(head, str) else head
    if len(lights) > 3:
        raise ValueError("at most 3 lights")
    rot = np.asarray(camera_R_face, dtype=np.float64).reshape(3, 3)
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    ss = max(1, int(supersample))
    width, height = camera.width * ss, camera.height * ss
    fx, fy, cx, cy = camera.fx * ss, camera.fy * ss, camera.cx * ss, camera.cy * ss

    # 1. weights and eye angles
    unknown = sorted(set(blendshapes or {}) - set(model.morph_names))
    if unknown:
        raise ValueError(f"head {model.name!r} has no blendshapes {unknown}")
    weights = {k: float(v) for k, v in (blendshapes or {}).items()}
    nan2 = np.full((2, 3), np.nan)
    eye_angles = np.full((2, 2), np.nan)
    if model.has_eyes:
        centres_face = model.small_eye_centres()
        if look_at is not None:
            target = rot.T @ (np.asarray(look_at, dtype=np.float64) - t)
            d = target[None] - centres_face
            eye_angles = np.degrees(np.stack(
                (np.arctan2(d[:, 1], d[:, 0]), np.arctan2(-d[:, 2], np.hypot(d[:, 0], d[:, 1]))),
                axis=-1))
        else:
            eye_angles = np.array([[eye_yaw, eye_pitch]] * 2, dtype=np.float64)
        for k, v in gaze_lid_weights(eye_angles).items():
            weights[k] = weights.get(k, 0.0) + v
    weights = {k: float(np.clip(v, 0.0, 1.0)) for k, v in weights.items()}

    # 2. posed meshes
    w = np.array([weights.get(n, 0.0) for n in model.morph_names])
    verts = model.head.vertices + np.tensordot(w, model.morph_positions, axes=1)
    norms = model.head.normals + np.tensordot(w, model.morph_normals, axes=1)
    parts = [(verts, norms, model.head.faces, model.head.uv)]
    if model.teeth is not None:
        parts.append((model.teeth.vertices, model.teeth.normals, model.teeth.faces,
                      model.teeth.uv))
    h_verts, h_norms, h_faces, h_uv = _concat(parts)
    h_cam = h_verts @ rot.T + t
    h_ncam = h_norms @ rot.T
    n_head_faces = len(model.head.faces)
    frag_h = rasterize(h_cam, h_faces, fx, fy, cx, cy, width, height)
    depth_h = frag_h.depth.reshape(-1)
    layer = np.where(frag_h.mask.reshape(-1), 1, 0)  # 0 background, 1 head, 2 sclera, 3 eye

    small_c = small_axes = None
    e_local = e_normal = None
    e_pix = np.zeros(0, dtype=np.int64)
    if model.eyeballs is not None:
        s_verts, s_norms, s_faces, _ = _concat(
            [(m.vertices, m.normals, m.faces, m.uv) for m in model.eyeballs])
        s_cam = s_verts @ rot.T + t
        frag_s = rasterize(s_cam, s_faces, fx, fy, cx, cy, width, height)
        depth_s = frag_s.depth.reshape(-1)
        sclera = frag_s.mask.reshape(-1) & ~(depth_h < depth_s + LID_TOLERANCE_M)
        layer[sclera] = 2
        # small eyeballs: exact ray-sphere hits on the sclera pixels
        small_c = model.small_eye_centres() @ rot.T + t  # (2, 3)
        eye_rot = [rot @ _eye_rotation(*a) for a in eye_angles]  # camera_R_eye
        small_axes = np.stack([r[:, 0] for r in eye_rot])
        cand = np.nonzero(sclera)[0]
        ray = np.stack(((cand % width + 0.5 - cx) / fx, (cand // width + 0.5 - cy) / fy,
                        np.ones(len(cand))), axis=-1)
        ray /= np.linalg.norm(ray, axis=1, keepdims=True)
        best = np.full(len(cand), np.inf)
        which = np.full(len(cand), -1)
        for e in range(2):
            b = ray @ small_c[e]
            disc = b * b - small_c[e] @ small_c[e] + EYEBALL_RADIUS_M ** 2
            hit = np.where(disc >= 0, b - np.sqrt(np.clip(disc, 0, None)), np.inf)
            closer = hit < best
            best[closer] = hit[closer]
            which[closer] = e
        got = which >= 0
        e_pix, which, dist = cand[got], which[got], best[got]
        points = ray[got] * dist[:, None]
        e_normal = (points - small_c[which]) / EYEBALL_RADIUS_M
        e_local = np.einsum("nji,nj->ni", np.stack(eye_rot)[which], points - small_c[which])
        layer[e_pix] = 3

    # 4. colours
    bg = _background(background, width, height).reshape(-1, 3)
    colour = bg.copy()
    pix = np.nonzero(layer == 1)[0]
    if len(pix):
        tri = frag_h.triangle.reshape(-1)[pix]
        n = _surface(frag_h, pix, h_cam, h_ncam, h_faces)
        n = _facing(n, _pixel_rays(pix, width, fx, fy, cx, cy))
        if model.texture is not None:
            albedo = _sample(model.texture, _surface(frag_h, pix, h_cam, h_uv, h_faces))
            on_head = tri < n_head_faces
            albedo[on_head] *= np.asarray(SKIN_TINT, dtype=np.float32)
        else:
            albedo = np.broadcast_to(np.asarray(model.colour, np.float32), (len(pix), 3))
        colour[pix] = albedo * _shade(n, lights, ambient)[:, None]
    if model.eyeballs is not None:
        # the sclera keeps the model eyeball's shading across the small eyeball's outline
        pix = np.nonzero(layer >= 2)[0]
        n = _surface(frag_s, pix, s_cam, s_norms @ rot.T, s_faces)
        n = _facing(n, _pixel_rays(pix, width, fx, fy, cx, cy))
        colour[pix] = np.asarray(SCLERA, np.float32) * _shade(n, lights, ambient)[:, None]
        albedo, iris_mask = _iris_colour(e_local, IRIS_COLOURS[iris])
        lit = albedo * _shade(e_normal.astype(np.float32), lights, ambient)[:, None]
        colour[e_pix] = iris_mask[:, None] * lit + (1.0 - iris_mask[:, None]) * colour[e_pix]
    image = np.clip(colour.reshape(height, width, 3) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if ss > 1:
        image = cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_AREA)

    # 5. truth
    n_head = len(model.head.vertices)
    head_cam = h_cam[:n_head]
    px = project(head_cam, camera.fx, camera.fy, camera.cx, camera.cy)
    visible = _vertex_visible(head_cam, layer, depth_h, fx, fy, cx, cy, width, height)
    if model.has_eyes:
        assert small_c is not None and small_axes is not None
        iris_c = small_c + small_axes * np.sqrt(EYEBALL_RADIUS_M ** 2 - IRIS_RADIUS_M ** 2)
        pupil_c = small_c + small_axes * EYEBALL_RADIUS_M
        iris_px = project(iris_c, camera.fx, camera.fy, camera.cx, camera.cy)
        pupil_px = project(pupil_c, camera.fx, camera.fy, camera.cx, camera.cy)
        pupil_vis = np.array([_pupil_visibility(small_c[e], eye_rot[e], layer, e_pix, which, e,
                                                fx, fy, cx, cy, width, height)
                              for e in range(2)])
        gaze = direction_angles(small_axes, small_c)
    else:
        small_c = small_axes = iris_c = pupil_c = nan2
        iris_px = pupil_px = np.full((2, 2), np.nan)
        pupil_vis = np.zeros(2)
        gaze = np.full((2, 2), np.nan)
    yaw, pitch, roll = (float(a) for a in euler_from_rotation(rot[None], t[None])[0])
    truth = Truth(
        head=model.name, fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy,
        width=camera.width, height=camera.height, camera_R_face=rot, translation=t, yaw=yaw,
        pitch=pitch, roll=roll, blendshapes={k: v for k, v in sorted(weights.items()) if v},
        eye_angles=eye_angles, gaze_angles=gaze, eyeball_centres=small_c,
        optical_axes=small_axes, iris_centres=iris_c, iris_centres_px=iris_px,
        pupil_centres=pupil_c, pupil_px=pupil_px, pupil_visibility=pupil_vis,
        vertices=head_cam, vertices_px=px, vertex_visible=visible,
        outer_eye_corners=model.outer_eye_corners)
    return image, truth


def _concat(parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]]
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Meshes joined into one (vertices, normals, faces, uv (zeros where none))."""
    offset = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
    verts = np.concatenate([p[0] for p in parts])
    norms = np.concatenate([p[1] for p in parts])
    faces = np.concatenate([p[2] + o for p, o in zip(parts, offset)])
    uv = np.concatenate([p[3] if p[3] is not None else np.zeros((len(p[0]), 2))
                         for p in parts])
    return verts, norms, faces, uv


def _pixel_rays(pix: np.ndarray, width: int, fx: float, fy: float, cx: float,
                cy: float) -> np.ndarray:
    """(N, 3) viewing rays through the centres of flat pixel indices."""
    return np.stack(((pix % width + 0.5 - cx) / fx, (pix // width + 0.5 - cy) / fy,
                     np.ones(len(pix))), axis=-1)


def _facing(normals: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) float32, flipped where they face away from the camera."""
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    n = np.where(((n * rays).sum(axis=1) > 0)[:, None], -n, n)
    return n.astype(np.float32)


def _vertex_visible(points: np.ndarray, layer: np.ndarray, depth: np.ndarray, fx: float,
                    fy: float, cx: float, cy: float, width: int, height: int) -> np.ndarray:
    """(V,) vertices (V, 3) in the image with a pixel of their 3 x 3 neighbourhood showing the
    head at about their depth (vertices on a mesh boundary, such as the lid edges, border
    pixels that show the eye)."""
    shown = np.where(layer == 1, depth, np.inf).astype(np.float32).reshape(height, width)
    depth = cv2.erode(shown, np.ones((3, 3), np.uint8)).reshape(-1)
    uv = project(points, fx, fy, cx, cy)
    col = np.floor(uv[:, 0]).astype(np.int64)
    row = np.floor(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (points[:, 2] > 0)
    flat = np.where(inside, row * width + col, 0)
    tol = np.maximum(0.002, 0.005 * points[:, 2])
    return inside & (points[:, 2] <= depth[flat] + tol)


def _pupil_visibility(centre: np.ndarray, cam_R_eye: np.ndarray, layer: np.ndarray,
                      e_pix: np.ndarray, which: np.ndarray, eye: int, fx: float, fy: float,
                      cx: float, cy: float, width: int, height: int) -> float:
    """Fraction of sample points of the pupil disc (on the small eyeball) that the render
    shows: the eye layer of this eye at the point's pixel, on the side facing the camera."""
    ang = np.linspace(0.0, 2.0 * np.pi, 24, endpoint=False)
    rad = PUPIL_RADIUS_M * np.sqrt(np.array([0.05, 0.35, 0.7, 1.0]))
    yz = np.concatenate([[[0.0, 0.0]]] + [np.stack((r * np.cos(ang), r * np.sin(ang)), -1)
                                          for r in rad])
    local = np.c_[np.sqrt(EYEBALL_RADIUS_M ** 2 - (yz ** 2).sum(1)), yz]  # (P, 3)
    pts = centre + local @ cam_R_eye.T
    facing = ((pts - centre) * pts).sum(axis=1) < 0
    uv = project(pts, fx, fy, cx, cy)
    col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = np.where(inside, row * width + col, 0)
    owner = np.full(width * height, -1, dtype=np.int64)
    owner[e_pix] = which
    shown = inside & facing & (layer[flat] == 3) & (owner[flat] == eye)
    return float(shown.mean())


# --------------------------------------------------------------------------------------------
# iBUG-68 truth (facecap)

#: The 68 iBUG / 300-W points on the facecap head mesh (vertex indices, iBUG order: jaw 0-16,
#: brows 17-26, nose 27-35, eyes 36-47, lips 48-67; iBUG's image-left is the subject's right).
#: Chosen once by :func:`mark_ibug68_facecap` (see there for the definitions); a test checks
#: that it reproduces this tuple.
IBUG68_FACECAP: Tuple[int, ...] = (
    791, 803, 2309, 801, 877, 656, 652, 645, 640, 635, 707, 714, 719, 722, 2100, 1004, 747,
    1038, 1037, 1036, 1035, 1034, 1028, 1022, 848, 847, 840,
    1266, 1280, 1293, 1331, 1586, 1596, 1598, 1620, 1634,
    1206, 1194, 1190, 1253, 1245, 1218, 1758, 1726, 1732, 1744, 1775, 1762,
    1427, 1457, 1481, 1480, 1531, 1533, 1538, 965, 964, 954, 956, 957,
    1427, 1449, 1453, 1464, 1538, 1098, 1095, 1413,
)

#: iBUG-68 groups (index ranges into the 68 points).
IBUG68_GROUPS: Dict[str, range] = {
    "jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
    "eyes": range(36, 48), "lips": range(48, 68)}

#: Left/right pairs of the iBUG-68 layout (subject's right point, its mirror image).
IBUG68_MIRROR_PAIRS: Tuple[Tuple[int, int], ...] = tuple(
    [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
       (48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)])

_FACE_X_MIN_M = -0.06  # the face in front of the ears (facecap's ears lie behind -0.065 m)


def ibug68_truth(truth: Truth) -> np.ndarray:
    """(68, 2) px: the iBUG-68 points of a facecap render (projected :data:`IBUG68_FACECAP`).

    Fixed mesh vertices: on a turned head (|yaw| up to ~30 deg) the far-side jaw points stay
    on the cheek a few pixels inside the visible outline, where annotators would follow the
    outline. Raises ValueError for other heads (only facecap is marked).
    """
    if truth.head != "facecap":
        raise ValueError(f"iBUG-68 points are marked on facecap only, not {truth.head!r}")
    return np.asarray(truth.vertices_px, dtype=np.float64)[list(IBUG68_FACECAP)]


def _boundary_loops(faces: np.ndarray) -> List[np.ndarray]:
    """Closed loops of boundary edges (holes: lid and lip openings, the mask's rim)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1)
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    adj: Dict[int, List[int]] = {}
    for a, b in uniq[count == 1]:
        adj.setdefault(int(a), []).append(int(b))
        adj.setdefault(int(b), []).append(int(a))
    seen: set = set()
    loops = []
    for start in sorted(adj):
        if start in seen:
            continue
        loop, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            loop.append(cur)
            seen.add(cur)
        loops.append(np.array(loop))
    return loops


def _nearest(vertices: np.ndarray, point: np.ndarray, candidates: np.ndarray) -> int:
    return int(candidates[np.argmin(np.linalg.norm(vertices[candidates] - point, axis=1))])


def _mirror_vertex(vertices: np.ndarray, index: int) -> int:
    return int(np.argmin(np.linalg.norm(vertices - vertices[index] * [1.0, -1.0, 1.0], axis=1)))


def _surface_samples(head: HeadModel, n: int = 12) -> Tuple[np.ndarray, np.ndarray]:
    """Points (S, 3) on the front of the head (n x n barycentric grid per triangle) and the
    texture's grey value there; only the samples a frontal orthographic view shows."""
    assert head.texture is not None and head.head.uv is not None
    v, f, uv = head.head.vertices, head.head.faces, head.head.uv
    f = f[(v[f][:, :, 0] > -0.01).all(axis=1)]
    a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1))
    m = a + b <= n
    w = np.stack([a[m], b[m], n - a[m] - b[m]], 1) / n
    pts = np.einsum("sk,fkd->fsd", w, v[f]).reshape(-1, 3)
    tuv = np.einsum("sk,fkd->fsd", w, uv[f]).reshape(-1, 2)
    tex = head.texture.astype(np.float32).mean(axis=2)
    h, wd = tex.shape
    col = np.clip(tuv[:, 0] * wd - 0.5, 0, wd - 1.001)
    row = np.clip(tuv[:, 1] * h - 0.5, 0, h - 1.001)
    c0, r0 = col.astype(np.int64), row.astype(np.int64)
    fc, fr = col - c0, row - r0
    grey = ((1 - fr) * ((1 - fc) * tex[r0, c0] + fc * tex[r0, c0 + 1])
            + fr * ((1 - fc) * tex[r0 + 1, c0] + fc * tex[r0 + 1, c0 + 1]))
    front = _front_most(pts, pts)
    return pts[front], grey[front]


def _front_most(points: np.ndarray, surface: np.ndarray, cell: float = 0.0005,
                tol: float = 0.0015) -> np.ndarray:
    """(N,) points that a frontal orthographic view (along -x) shows: within ``tol`` of the
    front-most surface sample of their 0.5 mm (y, z) cell."""
    def key(q: np.ndarray) -> np.ndarray:
        return (np.round(q[:, 1] / cell).astype(np.int64) * 1000003
                + np.round(q[:, 2] / cell).astype(np.int64))

    cells, inv = np.unique(key(surface), return_inverse=True)
    top = np.full(len(cells), -np.inf)
    np.maximum.at(top, inv, surface[:, 0])
    k = key(points)
    pos = np.clip(np.searchsorted(cells, k), 0, len(cells) - 1)
    return (cells[pos] == k) & (points[:, 0] > top[pos] - tol)


def _band_centre(values: np.ndarray, step_mm: float, window_mm: float = 5.0
                 ) -> Optional[Tuple[int, int, float]]:
    """The darkest dip of a grey profile: (first, last sample of the dip band, contrast)."""
    w = int(round(window_mm / step_mm))
    v = np.where(np.isnan(values), np.nanmax(values), values)
    up = np.array([v[i:i + w + 1].max() for i in range(len(v))])
    dn = np.array([v[max(0, i - w):i + 1].max() for i in range(len(v))])
    dip = np.minimum(up, dn) - v
    k = int(np.argmax(dip))
    thr = v[k] + 0.5 * dip[k]
    lo, hi = k, k
    while lo > 0 and v[lo - 1] < thr:
        lo -= 1
    while hi < len(v) - 1 and v[hi + 1] < thr:
        hi += 1
    return lo, hi, float(dip[k])


def mark_ibug68_facecap(head: HeadModel) -> Tuple[int, ...]:
    """Choose the 68 iBUG-68 vertices of the neutral facecap head (:data:`IBUG68_FACECAP`).

    Face frame (x out of the face, y to the subject's left, z up). The subject's right side is
    marked and mirrored (the head is mirror-symmetric); "visible" means shown by a frontal
    orthographic view. Definitions (iBUG / 300-W mark-up):

    * eyes 36-47: the lid openings (boundary loops of the mesh): outer corners
      :data:`OUTER_EYE_CORNERS`, inner corners the loop's most medial vertex, lid points on
      the upper / lower arc at 1/3 and 2/3 of the way from the outer to the inner corner;
    * lips: the inner contour 60-67 is the lip opening (corners its extreme vertices, 61/63
      and 65/67 at 1/3 of the half-width from the midline, 62/66 on it); the outer contour is
      the edge of the lip colour (the texture's darker vermilion band, half-way between band
      and skin) with 48/54 the mouth corners, 50/52 and 58/56 at 0.28 and 49/53 and 59/55 at
      0.64 of the half-width from the midline (the 300-W mean shape's spacing);
    * nose: 30 the pronasale (front-most midline vertex), 27 the midline at the eyes' level,
      28/29 evenly between; 33 the subnasale (sharpest turn of the midline profile between tip
      and upper lip); 31/35 the alar base (the lowest vertex of the alar-facial groove, the
      most concave vertices 12-25 mm off the midline between subnasale and tip level), 32/34
      half-way between alar base and subnasale;
    * brows 17-26: the centre line of the painted brow (texture dip, the longest continuous
      band), outer end to inner end at 0, 1/4, ..., 1 of its width;
    * jaw 0-16: the outline of the face in a frontal view (triangles in front of the ears),
      from the outer eye corners' level down to the menton (8, lowest point of the outline,
      on the midline), 8 equal arc-length steps each side.
    """
    v, f, nrm = head.head.vertices, head.head.faces, head.head.normals
    pts: Dict[int, int] = {}
    samples, grey = _surface_samples(head)
    visible_mask = _front_most(v, samples)
    visible = np.nonzero(visible_mask)[0]

    # 1. eyes
    loops = _boundary_loops(f)
    outer = head.outer_eye_corners[0]
    eye = next(lp for lp in loops if outer in lp)
    inner = int(eye[np.argmax(v[eye, 1])])
    pa, pb = v[outer], v[inner]
    above = v[eye, 2] > pa[2] + (v[eye, 1] - pa[1]) / (pb[1] - pa[1]) * (pb[2] - pa[2])

    def on_lid(arc: np.ndarray, frac: float) -> int:
        return int(arc[np.argmin(np.abs(v[arc, 1] - (pa[1] + frac * (pb[1] - pa[1]))))])

    up, lo = eye[above], eye[~above]
    pts.update({36: outer, 37: on_lid(up, 1 / 3), 38: on_lid(up, 2 / 3), 39: inner,
                40: on_lid(lo, 2 / 3), 41: on_lid(lo, 1 / 3)})
    z_eye = float(v[[pts[i] for i in range(36, 42)], 2].mean())

    # 2. lips: the opening is the midline loop in front of the teeth
    mouth = max((lp for lp in loops if abs(v[lp, 1].mean()) < 1e-3 and 20 <= len(lp) <= 60),
                key=lambda lp: v[lp, 0].mean())
    corner = int(mouth[np.argmin(v[mouth, 1])])
    other = int(mouth[np.argmax(v[mouth, 1])])
    rolled = np.roll(mouth, -int(np.nonzero(mouth == corner)[0][0]))
    j = int(np.nonzero(rolled == other)[0][0])
    arc1, arc2 = rolled[:j + 1], np.r_[rolled[j:], rolled[:1]]
    up_m, lo_m = (arc1, arc2) if v[arc1, 2].mean() > v[arc2, 2].mean() else (arc2, arc1)
    half = -float(v[corner, 1])

    def on_arc(arc: np.ndarray, y: float) -> int:
        return int(arc[np.argmin(np.abs(v[arc, 1] - y))])

    def lip_edge(y: float, upper: bool) -> int:
        z_open = v[on_arc(up_m if upper else lo_m, y), 2]
        dz = (1.0 if upper else -1.0) * (samples[:, 2] - z_open)
        col = np.abs(samples[:, 1] - y) < 0.0007
        band = np.median(grey[col & (dz > 0.002) & (dz < 0.005)])
        skin = np.median(grey[col & (dz > 0.009) & (dz < 0.013)])
        steps = np.arange(0.002, 0.012, 0.0005)
        vals = np.array([grey[col & (np.abs(dz - s) < 0.00025)].mean() for s in steps])
        s = steps[int(np.argmax(vals > 0.5 * (band + skin)))]
        q = samples[col][np.argmin(np.abs(dz[col] - s + 0.00025))]
        return _nearest(v, q, visible)

    pts.update({60: corner, 61: on_arc(up_m, -half / 3), 62: on_arc(up_m, 0.0),
                66: on_arc(lo_m, 0.0), 67: on_arc(lo_m, -half / 3),
                48: corner, 49: lip_edge(-0.64 * half, True), 50: lip_edge(-0.28 * half, True),
                51: lip_edge(0.0, True), 57: lip_edge(0.0, False),
                58: lip_edge(-0.28 * half, False), 59: lip_edge(-0.64 * half, False)})

    # 3. nose
    mid = np.nonzero((np.abs(v[:, 1]) < 5e-4) & visible_mask)[0]
    mid = mid[np.argsort(-v[mid, 2])]  # top to bottom
    tip = int(mid[np.argmax(v[mid, 0])])
    bridge = int(mid[np.argmin(np.abs(v[mid, 2] - z_eye))])
    levels = np.linspace(v[bridge, 2], v[tip, 2], 4)
    pts.update({27: bridge, 28: int(mid[np.argmin(np.abs(v[mid, 2] - levels[1]))]),
                29: int(mid[np.argmin(np.abs(v[mid, 2] - levels[2]))]), 30: tip})
    prof = mid[(v[mid, 2] < v[tip, 2]) & (v[mid, 2] > v[pts[51], 2])]
    d = np.diff(v[prof][:, [0, 2]], axis=0)
    turn = np.abs(np.diff(np.unwrap(np.arctan2(d[:, 1], d[:, 0]))))
    sub = int(prof[1 + int(np.argmax(turn))])
    pts[33] = sub
    nbr: List[set] = [set() for _ in range(len(v))]
    for a, b, c in f:
        nbr[a] |= {b, c}
        nbr[b] |= {a, c}
        nbr[c] |= {a, b}
    concave = np.array([(v[list(s)].mean(axis=0) - v[i]) @ nrm[i] if s else 0.0
                        for i, s in enumerate(nbr)])
    win = np.nonzero((v[:, 1] < -0.012) & (v[:, 1] > -0.025) & (v[:, 2] > v[sub, 2] - 0.006)
                     & (v[:, 2] < v[tip, 2]) & visible_mask)[0]
    groove = win[concave[win] >= 0.5 * concave[win].max()]
    alar = int(groove[np.argmin(v[groove, 2])])
    pts[31] = alar
    tgt = 0.5 * (v[alar] + v[sub])
    near = np.nonzero((np.abs(v[:, 1] - tgt[1]) < 0.003) & (np.abs(v[:, 2] - tgt[2]) < 0.004)
                      & visible_mask)[0]
    pts[32] = int(near[np.argmax(v[near, 0])]) if len(near) else _nearest(v, tgt, visible)

    # 4. brows: centre of the darker band per 1 mm column above the eye
    zz = np.arange(z_eye + 0.010, z_eye + 0.040, 0.0005)
    cols = []
    for y in np.arange(-0.075, -0.004, 0.001):
        col = np.abs(samples[:, 1] - y) < 0.0005
        vals = np.array([np.nan if not (sel := col & (np.abs(samples[:, 2] - z) < 0.00025)).any()
                         else grey[sel].mean() for z in zz])
        if np.isnan(vals).all():
            continue
        band = _band_centre(vals, 0.5)
        if band is not None and band[2] >= 8.0:
            cols.append((y, 0.5 * (zz[band[0]] + zz[band[1]])))
    arr = np.array(cols)
    cut = np.nonzero((np.abs(np.diff(arr[:, 1])) > 0.0035) | (np.diff(arr[:, 0]) > 0.0015))[0]
    arr = max(np.split(arr, cut + 1), key=len)
    arr[:, 1] = [np.median(arr[max(0, i - 2):i + 3, 1]) for i in range(len(arr))]
    for k, frac in enumerate(np.linspace(0.0, 1.0, 5)):
        y = arr[0, 0] + frac * (arr[-1, 0] - arr[0, 0])
        z = arr[np.argmin(np.abs(arr[:, 0] - y)), 1]
        sel = np.hypot(samples[:, 1] - y, samples[:, 2] - z) < 0.001
        pts[17 + k] = _nearest(v, samples[sel].mean(axis=0), visible)

    # 5. jaw: frontal outline of the face in front of the ears (0.25 mm raster)
    s = 4000.0
    tri = v[f[(v[f][:, :, 0] > _FACE_X_MIN_M).all(axis=1)]]
    mask = np.zeros((int(0.22 * s), int(0.2 * s)), np.uint8)
    px = np.round(np.stack([(tri[:, :, 1] + 0.1) * s, (0.06 - tri[:, :, 2]) * s], -1))
    cv2.fillPoly(mask, list(px.astype(np.int32)), 255)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=len)[:, 0].astype(np.float64)
    yz = np.stack([c[:, 0] / s - 0.1, 0.06 - c[:, 1] / s], 1)
    right = np.nonzero(yz[:, 0] < 0)[0]
    start = int(right[np.argmin(np.abs(yz[right, 1] - v[outer, 2]) - 1e-3 * np.abs(
        yz[right, 0]))])
    low = int(np.argmin(yz[:, 1] + 1e-6 * np.abs(yz[:, 0])))
    n = len(yz)
    for direction in (1, -1):
        path = [(start + direction * k) % n for k in range(n)]
        path = path[:path.index(low) + 1]
        if yz[path[len(path) // 2], 1] < v[outer, 2]:  # down the cheek, not over the head
            break
    pp = yz[path]
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(pp, axis=0), axis=1))]
    cand = np.nonzero((v[:, 0] > _FACE_X_MIN_M) & (nrm[:, 0] < 0.6))[0]
    for k in range(9):
        q = pp[np.argmin(np.abs(arc - arc[-1] * k / 8))]
        pts[k] = int(cand[np.argmin(np.hypot(v[cand, 1] - q[0], v[cand, 2] - q[1]))])

    # 6. the subject's left side: mirror images
    for i, j in IBUG68_MIRROR_PAIRS:
        pts[j] = _mirror_vertex(v, pts[i])
    return tuple(int(pts[i]) for i in range(68))


# --------------------------------------------------------------------------------------------
# CLI


def _parse_blend(items: Sequence[str]) -> Dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value:
            raise argparse.ArgumentTypeError(f"--blend wants NAME=WEIGHT, got {item!r}")
        out[name] = float(value)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Render one image and write it with its truth (.json beside it)."""
    parser = argparse.ArgumentParser(prog="python -m face3d_ros.tools.head_render",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", choices=sorted(HEAD_FILES), default="facecap")
    parser.add_argument("--heads-dir", type=Path, default=None,
                        help=f"folder of the .glb files (default ${HEADS_ENV} or "
                        f"{DEFAULT_HEADS_DIR})")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--hfov", type=float, default=60.0, help="horizontal FOV, degrees")
    parser.add_argument("--yaw", type=float, default=0.0)
    parser.add_argument("--pitch", type=float, default=0.0)
    parser.add_argument("--roll", type=float, default=0.0)
    parser.add_argument("--eye-yaw", type=float, default=0.0)
    parser.add_argument("--eye-pitch", type=float, default=0.0)
    parser.add_argument("--distance", type=float, default=None,
                        help="metres to the face (default: eye corners --eye-px apart)")
    parser.add_argument("--eye-px", type=float, default=95.0,
                        help="outer-eye-corner distance in pixels when --distance is not set")
    parser.add_argument("--offset", type=float, nargs=2, default=(0.0, 0.0),
                        metavar=("X", "Y"), help="lateral position of the face, metres")
    parser.add_argument("--blend", action="append", default=[], metavar="NAME=WEIGHT")
    parser.add_argument("--iris", choices=sorted(IRIS_COLOURS), default="brown")
    parser.add_argument("--supersample", type=int, default=2)
    parser.add_argument("--with-mesh", action="store_true",
                        help="also write the posed vertices and projections to the JSON")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    try:
        head = load_head(args.head, args.heads_dir)
        camera = camera_from_fov(args.width, args.height, args.hfov)
        dist = args.distance or distance_for_eye_corners(head, args.eye_px, camera.fx)
        t = np.array([args.offset[0], args.offset[1], dist])
        rot = camera_R_face_from_euler(args.yaw, args.pitch, args.roll, t)
        image, truth = render(head, camera, rot, t, _parse_blend(args.blend), args.eye_yaw,
                              args.eye_pitch, iris=args.iris, supersample=args.supersample)
    except (FileNotFoundError, ValueError, argparse.ArgumentTypeError) as exc:
        print(f"head_render: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    args.output.with_suffix(".json").write_text(
        json.dumps(truth.to_dict(args.with_mesh), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
