"""Rebuild ``face3d_ros/core/data/canonical_face.npz`` from registry-package portraits.

    python -m face3d_ros.tools.make_canonical [--out PATH] [--model-dir DIR]

The canonical face is the mean, left/right-symmetric metric shape of the mesh network's own
output on frontal portraits (scikit-image's astronaut, matplotlib's Grace Hopper), each
expressed in its anatomical face frame and scaled by its iris (see ``core.canonical``). Its
frame's pitch and its eyeball centres are then set from renders of the two real head models
in ``../shared/data/heads`` (``$FACE3D_HEADS_DIR``) with exact truth: the Lee Perry-Smith scan
and the facecap head at small head turns, and facecap with its eyes turned (gaze truth).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from face3d_ros.core.canonical import (DATA_FILE, CanonicalFace, build_canonical,
                                       eyeballs_from_truth, frame_pitch, save_canonical,
                                       with_frame)
from face3d_ros.core.config import EngineConfig
from face3d_ros.core.types import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER

SOURCES = ("shape: skimage.data.astronaut, matplotlib sample grace_hopper.jpg (and their mirror "
           "images); frame pitch and eyeball centres: renders of the Lee Perry-Smith head scan "
           "(CC BY 3.0) and the facecap head (Face Cap, Niels Jansson)")

#: Head poses (yaw, pitch) of the frame calibration renders, degrees; both heads.
FRAME_POSES = [(y, p) for y in (-20, 0, 20) for p in (-15, 0, 15)]
#: Eye rotations (yaw, pitch) of the eyeball calibration renders (facecap), degrees.
EYE_POSES = [(0, 0), (15, 0), (-15, 0), (0, 10), (0, -10)]
#: Outer eye-corner distance of the calibration renders, px (a face of about 220 px).
CALIBRATION_EYE_PX = 95.0


def portrait_images() -> List[np.ndarray]:
    """The frontal portraits (RGB uint8) and their mirror images."""
    import matplotlib.cbook
    from skimage import data

    from face3d_ros.core.imageio import read_image

    hopper = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    images = [data.astronaut(), hopper]
    return images + [np.ascontiguousarray(im[:, ::-1]) for im in images]


def _landmarks(engine, image: np.ndarray, refine: bool = False) -> np.ndarray:
    """(478, 3) px landmarks of the single face in ``image``, from its detection ROI (and,
    with ``refine``, once more from the ROI those landmarks place, as the tracker does). The
    engine detects on the whole image only (``min_face_px=0``): its detections are final
    without the face flag that verifies tile candidates."""
    from face3d_ros.core.landmarks import roi_from_detection, roi_from_landmarks

    t = engine.to_tensor(image)
    dets = engine.detect([t])[0]
    if len(dets) != 1:
        raise RuntimeError(f"expected one face, found {len(dets)}")
    lm = engine.landmarks([t], [0], [roi_from_detection(dets[0])]).landmarks[0]
    if refine:
        lm = engine.landmarks([t], [0], [roi_from_landmarks(lm)]).landmarks[0]
    return lm.double().cpu().numpy()


def _fit_renders(engine, face: CanonicalFace, renders):
    """(rotation, translation, scale) of the pose fit of ``face`` to each (image, truth), the
    last two in the truth's metric scale."""
    import torch

    from face3d_ros.core.geometry import pose_weights, solve_faces

    out = []
    for image, truth in renders:
        lm = _landmarks(engine, image, refine=True)
        k = truth.intrinsics
        geo = solve_faces(torch.from_numpy(lm[None]),
                          torch.tensor([[k.fx, k.fy, k.cx, k.cy]], dtype=torch.float64),
                          torch.from_numpy(face.vertices), pose_weights(),
                          torch.from_numpy(face.eyeball_centres), engine.config.iris_diameter_m)
        # The reconstruction is the scene scaled about the camera by its metric-scale error:
        # the depth of the irises' midpoint, read over true.
        iris = geo.points[0, [RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER], 2].mean().item()
        k = iris / float(truth.iris_centres[:, 2].mean()) if truth.iris_centres.size else 1.0
        out.append((geo.rotation[0].numpy(), geo.translation[0].numpy() / k,
                    float(geo.scale[0]) / k))
    return out


def _renders(head_name: str, poses, eyes: bool, heads: Optional[str]):
    """(image, truth) renders of a head at head poses, or frontal with eye rotations."""
    from face3d_ros.tools import head_render as hr

    head = hr.load_head(head_name, heads)
    cam = hr.camera_from_fov(640, 480, 60.0)
    t = np.array([0.0, 0.0, hr.distance_for_eye_corners(head, CALIBRATION_EYE_PX, cam.fx)])
    for a, b in poses:
        if eyes:
            yield hr.render(head, cam, hr.camera_R_face_from_euler(0, 0, 0, t), t,
                            eye_yaw=a, eye_pitch=b)
        else:
            yield hr.render(head, cam, hr.camera_R_face_from_euler(a, b, 0, t), t)


def make(model_dir: Optional[str] = None, heads: Optional[str] = None) -> CanonicalFace:
    """Build the canonical face: shape from the portraits, frame and eyeballs from renders."""
    from face3d_ros.core.engine import FaceEngine

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=model_dir, min_face_px=0))
    shape = build_canonical([_landmarks(engine, im) for im in portrait_images()])
    renders = [r for name in ("lps", "facecap") for r in _renders(name, FRAME_POSES, False,
                                                                  heads)]
    fits = _fit_renders(engine, shape, renders)
    pitch = frame_pitch(np.stack([f[0] for f in fits]),
                        np.stack([truth.camera_R_face for _, truth in renders]))
    framed = with_frame(shape, pitch)
    eye_renders = list(_renders("facecap", EYE_POSES, True, heads))
    fits = _fit_renders(engine, framed, eye_renders)
    eyes = eyeballs_from_truth(np.stack([truth.eyeball_centres for _, truth in eye_renders]),
                               np.stack([f[0] for f in fits]), np.stack([f[1] for f in fits]),
                               np.array([f[2] for f in fits]))
    return with_frame(shape, pitch, eyes)


def main(argv: Optional[List[str]] = None) -> int:
    """Rebuild and write the canonical face."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DATA_FILE))
    p.add_argument("--model-dir")
    p.add_argument("--heads", help="folder of the head models (default ../shared/data/heads "
                   "or $FACE3D_HEADS_DIR)")
    args = p.parse_args(argv)
    face = make(args.model_dir, args.heads)
    save_canonical(face, args.out, SOURCES)
    width = face.vertices[:, 1].max() - face.vertices[:, 1].min()
    eyes = face.eyeball_centres * 1000.0
    print(f"wrote {args.out}: 478 points, face width {width * 100:.1f} cm, eyeball centres "
          f"(mm) right {eyes[0].round(1)} left {eyes[1].round(1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
