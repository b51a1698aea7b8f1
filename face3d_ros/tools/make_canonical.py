"""Rebuild ``face3d_ros/core/data/canonical_face.npz`` from registry-package portraits.

    python -m face3d_ros.tools.make_canonical [--out PATH] [--model-dir DIR]

The canonical face is the mean, left/right-symmetric metric shape of the mesh network's own
output on frontal portraits (scikit-image's astronaut, matplotlib's Grace Hopper), each
expressed in its anatomical face frame and scaled by its iris (see ``core.canonical``).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from face3d_ros.core.canonical import DATA_FILE, CanonicalFace, build_canonical, save_canonical
from face3d_ros.core.config import EngineConfig

SOURCES = "skimage.data.astronaut, matplotlib sample grace_hopper.jpg (and their mirror images)"


def portrait_images() -> List[np.ndarray]:
    """The frontal portraits (RGB uint8) and their mirror images."""
    import matplotlib.cbook
    from skimage import data

    from face3d_ros.core.imageio import read_image

    hopper = read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    images = [data.astronaut(), hopper]
    return images + [np.ascontiguousarray(im[:, ::-1]) for im in images]


def portrait_landmarks(model_dir: Optional[str] = None) -> List[np.ndarray]:
    """(478, 3) px landmarks of the single face in each portrait, from detection ROIs."""
    from face3d_ros.core.engine import FaceEngine
    from face3d_ros.core.landmarks import roi_from_detection

    engine = FaceEngine(EngineConfig(device="cpu", model_dir=model_dir))
    out = []
    for im in portrait_images():
        t = engine.to_tensor(im)
        dets = engine.detect([t])[0]
        if len(dets) != 1:
            raise RuntimeError(f"expected one face in a portrait, found {len(dets)}")
        batch = engine.landmarks([t], [0], [roi_from_detection(dets[0])])
        out.append(batch.landmarks[0].double().cpu().numpy())
    return out


def make(model_dir: Optional[str] = None) -> CanonicalFace:
    """Build the canonical face from the portraits."""
    return build_canonical(portrait_landmarks(model_dir))


def main(argv: Optional[List[str]] = None) -> int:
    """Rebuild and write the canonical face."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(DATA_FILE))
    p.add_argument("--model-dir")
    args = p.parse_args(argv)
    face = make(args.model_dir)
    save_canonical(face, args.out, SOURCES)
    width = face.vertices[:, 1].max() - face.vertices[:, 1].min()
    print(f"wrote {args.out}: 478 points, face width {width * 100:.1f} cm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
