"""face3d-enroll: one complete textured 3D model of a person from several photos.

    face3d-enroll FRONT LEFT RIGHT [MORE...] -o DIR [--name NAME] [--id N] [--texture-size S]
                  [--device auto|cpu|cuda] [--model-dir DIR] [--sheet PNG]

Writes DIR/NAME.npz (the model file the node reloads), DIR/NAME.obj + .mtl + .png and
DIR/NAME.glb, and logs the texture coverage by source (seen / mirrored / filled). ``--sheet``
draws the inputs, the model turned left, front and right, and the front view's expression at
intensities 0, 0.5, 1.0 and 1.5. Exit status: 0 written, 1 a photo without a face or
unreadable, 2 bad setup (models missing, bad option).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from face3d_ros.core.config import EngineConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.people.enrollment import (Enrollment, EnrollmentView, enroll, render_model,
                                               views_from_images)
from face3d_ros.core.people.identity import apply_expression, split
from face3d_ros.core.io.imageio import ImageReadError, read_image
from face3d_ros.core.people.model_io import export_glb, export_obj, save_model
from face3d_ros.core.io.model_store import ModelNotFoundError

log = logging.getLogger("face3d-enroll")
VIEW_NAMES = ("front", "left", "right")


def _rgb8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    img = img[..., :3]
    if img.dtype == np.uint16:
        img = (img / 257).astype(np.uint8)
    return np.ascontiguousarray(img)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    out[:24] = 255
    cv2.putText(out, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _crop(view: EnrollmentView, size: int) -> np.ndarray:
    x0, y0, x1, y1 = view.face.box
    c, half = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), 0.8 * max(x1 - x0, y1 - y0)
    m = np.array([[size / (2 * half), 0, size / 2 - c[0] * size / (2 * half)],
                  [0, size / (2 * half), size / 2 - c[1] * size / (2 * half)]])
    return cv2.warpAffine(view.image, m, (size, size), borderMode=cv2.BORDER_REPLICATE)


def make_sheet(views: Sequence[EnrollmentView], result: Enrollment, size: int = 220) -> np.ndarray:
    """(3 * size, 4 * size, 3) uint8 RGB: inputs; model at yaw -40, 0, +40 and pitch 15; the
    first view's expression on the model at intensities 0, 0.5, 1.0, 1.5."""
    model = result.model
    row1 = [_label(_crop(v, size), f"input {v.name}") for v in views[:4]]
    row1 += [np.full((size, size, 3), 255, np.uint8)] * (4 - len(row1))
    row2 = [_label(render_model(model, y, p, size), f"model yaw {y:+.0f} pitch {p:+.0f}")
            for y, p in ((40.0, 0.0), (0.0, 0.0), (-40.0, 0.0), (25.0, 15.0))]
    disp = split(result.view_shapes[0], model.vertices.astype(np.float64))
    row3 = [_label(render_model(model, 15.0, 0.0, size,
                                apply_expression(model.display_vertices, disp, a)),
                   f"expression x {a:.1f}") for a in (0.0, 0.5, 1.0, 1.5)]
    return np.vstack([np.hstack(r) for r in (row1, row2, row3)])


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(prog="face3d-enroll", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", type=Path,
                   help="photos of one person: FRONT LEFT RIGHT [MORE...] (at least one)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--name", default="", help="model name (default: the front photo's name)")
    p.add_argument("--id", type=int, default=-1, help="the person's id stored in the model")
    p.add_argument("--texture-size", type=int, default=512, help="atlas side in texels")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--model-dir", help="model folder (default $FACE3D_MODEL_DIR or cache)")
    p.add_argument("--no-glb", action="store_true", help="skip the binary glTF export")
    p.add_argument("--sheet", type=Path, help="also draw a preview sheet to this PNG")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not 64 <= args.texture_size <= 4096:
        log.error("--texture-size must be in [64, 4096], got %d", args.texture_size)
        return 2
    try:
        engine = FaceEngine(EngineConfig(device=args.device, model_dir=args.model_dir))
    except (ModelNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    names = [VIEW_NAMES[i] if i < len(VIEW_NAMES) else f"view{i}"
             for i in range(len(args.images))]
    try:
        images = [_rgb8(read_image(p)) for p in args.images]
        views = views_from_images(engine, images,
                                  [f"{n} ({p.name})" for n, p in zip(names, args.images)])
    except (ImageReadError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    name = args.name or args.images[0].stem
    result = enroll(views, name=name, face_id=args.id, texture_size=args.texture_size)
    for v, seen in zip(views, result.view_seen):
        p = v.face.head_pose
        log.info("%s: yaw %+.1f pitch %+.1f roll %+.1f deg, saw %.1f %% of the texture",
                 v.name, p.yaw, p.pitch, p.roll, 100.0 * seen)
    cov = result.coverage
    log.info("texture: seen %.1f %%, mirrored %.1f %%, filled %.1f %%",
             100 * cov["seen"], 100 * cov["mirrored"], 100 * cov["filled"])
    out = args.output
    log.info("model: %s", save_model(out / f"{name}.npz", result.model))
    log.info("OBJ: %s", export_obj(result.model, out, name))
    if not args.no_glb:
        try:
            log.info("glTF: %s", export_glb(result.model, out / f"{name}.glb"))
        except ImportError as exc:
            log.error("%s", exc)
            return 2
    if args.sheet:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet = make_sheet(views, result)
        cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        log.info("sheet: %s", args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
