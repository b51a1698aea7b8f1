"""face3d-infer: faces of image files to JSON, an overlay picture and textured OBJ meshes.

    face3d-infer IMAGE... [--device auto|cpu|cuda] [--backend auto|torch|litert]
                 [--json OUT.json] [--overlay OUT.png]
                 [--obj DIR] [--model-dir DIR] [--detector short|full|both] [--hfov DEG]

Every face gets an id (1..N per image). An image without a face is an empty result, not an
error; an unreadable image is reported and the others are still processed (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import cv2

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.people.export import write_textured_obj
from face3d_ros.core.io.imageio import ImageReadError, read_image
from face3d_ros.core.io.model_store import ModelNotFoundError
from face3d_ros.core.io.overlay import draw_overlay
from face3d_ros.core.io.serialize import SCHEMA_VERSION, frame_to_dict
from face3d_ros.core.pipeline.topology import load_topology
from face3d_ros.core.pipeline.tracking import FaceTracker

log = logging.getLogger("face3d-infer")


def _overlay_path(arg: Path, image: Path, many: bool) -> Path:
    if arg.is_dir() or arg.suffix == "" or many:
        folder = arg if (arg.is_dir() or arg.suffix == "") else arg.parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{image.stem}_overlay.png"
    arg.parent.mkdir(parents=True, exist_ok=True)
    return arg


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of face3d-infer."""
    p = argparse.ArgumentParser(prog="face3d-infer", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "litert"),
                   help="inference backend (default auto: torch on CUDA, LiteRT on the CPU)")
    p.add_argument("--json", type=Path, help="write all results to this JSON file")
    p.add_argument("--overlay", type=Path,
                   help="overlay PNG (a folder, or one file when there is one image)")
    p.add_argument("--obj", type=Path, help="folder for one textured OBJ per face")
    p.add_argument("--model-dir", help="model folder (default $FACE3D_MODEL_DIR or cache)")
    p.add_argument("--detector", default="both", choices=("short", "full", "both"))
    p.add_argument("--hfov", type=float, default=60.0,
                   help="horizontal field of view (deg) assumed for metric output")
    p.add_argument("--no-landmarks", action="store_true",
                   help="leave the 478-point arrays out of the JSON")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run face3d-infer; returns the exit status (0 ok, 1 some image failed, 2 no models)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        engine = FaceEngine(EngineConfig(device=args.device, backend=args.backend,
                                         model_dir=args.model_dir,
                                         detector=args.detector, default_hfov_deg=args.hfov))
    except (ModelNotFoundError, ValueError, ImportError) as exc:
        log.error("%s", exc)
        return 2
    if engine.device_warning:
        log.warning("%s", engine.device_warning)
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1, smoothing=False))
    triangles = load_topology(args.model_dir).triangles
    results, failed = [], 0
    for path in args.images:
        if path.is_dir():
            msg = (f"{path} is a directory, not an image file: give the images themselves "
                   f"(e.g. {path}/*.png)")
            log.error("%s", msg)
            failed += 1
            results.append({"path": str(path), "error": msg})
            continue
        try:
            image = read_image(path)
            tracker.reset()
            frame = tracker.process(image)
        except (ImageReadError, ValueError) as exc:
            log.error("%s", exc)
            failed += 1
            results.append({"path": str(path), "error": str(exc)})
            continue
        entry = {"path": str(path), **frame_to_dict(frame, not args.no_landmarks)}
        results.append(entry)
        log.info("%s: %d face(s) in %.1f ms", path, len(frame.faces), frame.timings_ms["total"])
        for f in frame.faces:
            p = f.head_pose
            log.info("  id %d  yaw %+.1f pitch %+.1f roll %+.1f deg  distance %.2f m  "
                     "gaze yaw %+.1f pitch %+.1f", f.track_id, p.yaw, p.pitch, p.roll,
                     float(p.translation[2]), f.gaze.combined.yaw, f.gaze.combined.pitch)
        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        rgb = rgb[..., :3]
        if rgb.dtype != "uint8":
            rgb = (rgb / 257).astype("uint8")
        if args.overlay:
            out = _overlay_path(args.overlay, path, len(args.images) > 1)
            cv2.imwrite(str(out), cv2.cvtColor(draw_overlay(rgb, frame, triangles),
                                               cv2.COLOR_RGB2BGR))
            entry["overlay"] = str(out)
        if args.obj:
            entry["obj"] = [str(write_textured_obj(args.obj, f"{path.stem}_face{f.track_id}",
                                                   f, rgb, triangles)) for f in frame.faces]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "images": results},
                                        indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
