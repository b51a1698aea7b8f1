"""Export of a face mesh as a textured Wavefront OBJ (+ MTL + PNG texture from the image)."""

from __future__ import annotations

from pathlib import Path
import cv2
import numpy as np

from ..types import NUM_MESH, FaceResult


def write_textured_obj(out_dir: Path, name: str, face: FaceResult, image_rgb: np.ndarray,
                       triangles: np.ndarray, frame: str = "camera",
                       margin: float = 0.1) -> Path:
    """Write ``name.obj``, ``name.mtl`` and ``name.png`` into ``out_dir``; returns the OBJ path.

    Vertices: the 468 mesh vertices in metres, in the camera optical frame (``frame="camera"``)
    or in the face frame (``frame="face"``: pose removed, x out of the face, z up). Texture: the
    image crop around the face; UVs are the landmarks' pixel positions in that crop.
    triangles: (F, 3) mesh topology (0-based).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    verts = face.landmarks_3d[:NUM_MESH].astype(np.float64)
    if frame == "face":
        verts = (verts - face.head_pose.translation) @ face.head_pose.rotation
    elif frame != "camera":
        raise ValueError(f"frame must be 'camera' or 'face', got {frame!r}")
    img = np.asarray(image_rgb)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = face.box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    cx0, cy0 = int(max(0, np.floor(x0 - mx))), int(max(0, np.floor(y0 - my)))
    cx1, cy1 = int(min(w, np.ceil(x1 + mx))), int(min(h, np.ceil(y1 + my)))
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"face box {face.box} lies outside the {w}x{h} image")
    crop = np.ascontiguousarray(img[cy0:cy1, cx0:cx1, :3])
    uv = (face.landmarks_2d[:NUM_MESH, :2] - np.array([cx0, cy0])) / np.array(
        [cx1 - cx0, cy1 - cy0])
    uv[:, 1] = 1.0 - uv[:, 1]  # OBJ texture v points up
    png = out_dir / f"{name}.png"
    if not cv2.imwrite(str(png), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {png}")
    (out_dir / f"{name}.mtl").write_text(
        f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {name}.png\n")
    lines = [f"mtllib {name}.mtl", f"o {name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    lines.append("usemtl face")
    tri = np.asarray(triangles, dtype=np.int64) + 1
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in tri]
    obj = out_dir / f"{name}.obj"
    obj.write_text("\n".join(lines) + "\n")
    return obj


def load_obj_counts(path: Path) -> tuple:
    """(vertices, texture coordinates, faces) counted in an OBJ file (for checks)."""
    counts = {"v": 0, "vt": 0, "f": 0}
    for line in Path(path).read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in counts:
            counts[key] += 1
    return counts["v"], counts["vt"], counts["f"]
