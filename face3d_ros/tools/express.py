"""face3d-express: put the expression of a photo (or a face3d-infer result) on an enrolled model.

    face3d-express MODEL --from FRAME_OR_JSON --intensity 0.0..1.5 -o OUT
                   [--source-model SRC.npz] [--device auto|cpu|cuda] [--model-dir DIR]

MODEL: an enrolled model (.npz from face3d-enroll or the people node's EnrollFace action).
FRAME_OR_JSON: an image (the engine runs on it) or a face3d-infer JSON file (the largest face
of its first image that has landmarks). The frame's expression is split from its identity
(``--source-model`` when the frame shows an enrolled person, else the frame's own neutral
estimate), moved onto MODEL's face (scaled by face and region size) at the chosen intensity,
and written to OUT: ``.obj`` (+ .mtl + .png), ``.glb`` or ``.npz`` (a model file). The
expression coefficients of the result are logged. Exit status: 0 written, 1 unusable input, 2
bad setup or option.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from face3d_ros.core.people.identity import (MAX_INTENSITY, apply_expression, expression_of,
                                             neutralize, split, transfer)
from face3d_ros.core.people.model_io import (ModelFileError, export_glb, export_obj, load_model,
                                             save_model, with_vertices)

log = logging.getLogger("face3d-express")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def points_from_json(path: Path) -> np.ndarray:
    """(478, 3) face-frame points (m) of the largest face with landmarks in a face3d-infer JSON
    file. Raises ValueError saying what is missing."""
    data = json.loads(Path(path).read_text())
    for image in data.get("images", []):
        faces = [f for f in image.get("faces", []) if "landmarks_3d" in f]
        if not faces:
            continue
        face = max(faces, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
        pts = np.asarray(face["landmarks_3d"], dtype=np.float64)
        rot = np.asarray(face["head_pose"]["rotation"], dtype=np.float64)
        t = np.asarray(face["head_pose"]["translation"], dtype=np.float64)
        return (pts - t) @ rot
    raise ValueError(f"{path}: no face with landmarks; run face3d-infer without --no-landmarks")


def points_from_image(path: Path, device: str, model_dir: Optional[str]) -> np.ndarray:
    """Face-frame points (478, 3) m of the largest face in an image."""
    from face3d_ros.core.config import EngineConfig
    from face3d_ros.core.pipeline.engine import FaceEngine
    from face3d_ros.core.people.enrollment import face_frame_points, largest_face
    from face3d_ros.core.io.imageio import read_image

    image = read_image(path)
    engine = FaceEngine(EngineConfig(device=device, model_dir=model_dir))
    face = largest_face(engine.process(image).faces)
    if face is None:
        raise ValueError(f"{path}: no face found; use a photo where the face is visible")
    return face_frame_points(face)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(prog="face3d-express", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="enrolled model (.npz)")
    p.add_argument("--from", dest="source", type=Path, required=True,
                   help="image or face3d-infer JSON with the expression")
    p.add_argument("--intensity", type=float, default=1.0,
                   help=f"0 (identity) .. 1 (as seen) .. {MAX_INTENSITY} (exaggerated)")
    p.add_argument("-o", "--output", type=Path, required=True, help="OUT.obj, OUT.glb or OUT.npz")
    p.add_argument("--source-model", type=Path,
                   help="enrolled model of the person in the frame (better expression split)")
    p.add_argument("--no-region-scaling", action="store_true",
                   help="scale the expression by face size only, not per region")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--model-dir", help="model folder (default $FACE3D_MODEL_DIR or cache)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not 0.0 <= args.intensity <= MAX_INTENSITY:
        log.error("--intensity must be in [0, %.1f], got %g", MAX_INTENSITY, args.intensity)
        return 2
    suffix = args.output.suffix.lower()
    if suffix not in (".obj", ".glb", ".npz"):
        log.error("-o must end in .obj, .glb or .npz, got %s", args.output)
        return 2
    try:
        target = load_model(args.model)
        source_model = load_model(args.source_model) if args.source_model else None
    except ModelFileError as exc:
        log.error("%s", exc)
        return 2
    try:
        if args.source.suffix.lower() == ".json":
            points = points_from_json(args.source)
        elif args.source.suffix.lower() in IMAGE_SUFFIXES:
            points = points_from_image(args.source, args.device, args.model_dir)
        else:
            raise ValueError(f"{args.source}: give an image (PNG, JPEG, ...) or a face3d-infer "
                             "JSON file")
    except (OSError, ValueError, KeyError) as exc:
        log.error("%s", exc)
        return 1
    src_id = (source_model.vertices.astype(np.float64) if source_model is not None
              else neutralize(points)[0])
    disp = split(points, src_id)
    tgt_id = target.vertices.astype(np.float64)
    moved = transfer(disp, src_id, tgt_id, per_region=not args.no_region_scaling)
    shape = apply_expression(tgt_id, moved, args.intensity)
    coeffs_out = {k: round(v, 3) for k, v in expression_of(shape, tgt_id).items() if v > 0.005}
    log.info("expression at intensity %.2f: %s", args.intensity, coeffs_out or "neutral")
    result = with_vertices(target, shape)
    if suffix == ".obj":
        path = export_obj(result, args.output.parent, args.output.stem)
    elif suffix == ".glb":
        path = export_glb(result, args.output)
    else:
        path = save_model(args.output, result)
    log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
