"""face3d-bag-make: turn images or a video into a ROS 2 bag that face3d-eval can replay.

    face3d-bag-make IMAGES_OR_VIDEO... -o BAG [--rate HZ] [--camera-info YAML]
                    [--storage mcap|sqlite3] [--topic /camera/image_raw] [--compressed]

Inputs: image files, folders of images (sorted by name) or video files, in order. Frames are
stamped ``1/rate`` seconds apart; with ``--camera-info`` (the camera_calibration YAML format) a
CameraInfo is written beside every image. The library functions below also build the demo and
test bags from registry-package photos (skimage astronaut, matplotlib's grace_hopper.jpg,
skimage chelsea) and a ground-truth bag of a portrait rotated in-plane through known angles.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from face3d_ros.core.types import CameraIntrinsics
from face3d_ros.tools import bagio

DEFAULT_TOPIC = "/camera/image_raw"
DEFAULT_INFO_TOPIC = "/camera/camera_info"
TRUTH_POSE_TOPIC = "/face3d_truth/head_pose"
TRUTH_GAZE_TOPIC = "/face3d_truth/gaze"
FRAME_ID = "camera_optical_frame"
#: Start time of generated bags, ns (2024-01-01T00:00:00Z), so stamps are realistic.
START_NS = 1_704_067_200 * 10**9
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}


@dataclass(frozen=True)
class Truth:
    """Ground truth of the (largest) face in one frame, camera optical frame.

    rotation: (3, 3) camera_R_face; translation: (3,) metres; gaze: (3,) unit direction or None.
    """

    rotation: np.ndarray
    translation: np.ndarray
    gaze: Optional[np.ndarray] = None


def write_bag(path: str | Path, frames: Iterable[np.ndarray], rate_hz: float = 10.0,
              storage: str = "mcap", topic: str = DEFAULT_TOPIC,
              intrinsics: Optional[CameraIntrinsics] = None, compressed: bool = False,
              truth: Optional[Sequence[Optional[Truth]]] = None, overwrite: bool = False,
              start_ns: int = START_NS) -> int:
    """Write (H, W, 3) uint8 RGB frames as a bag; returns the number of frames written.

    intrinsics: write a CameraInfo (``/camera/camera_info``) beside every image.
    truth: one entry per frame (or None): written as PoseStamped on ``/face3d_truth/head_pose``
    and, when it has a gaze, Vector3Stamped on ``/face3d_truth/gaze``, stamped like the image.
    """
    if rate_hz <= 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    period = int(round(1e9 / rate_hz))
    img_type = bagio.COMPRESSED_TYPE if compressed else bagio.IMAGE_TYPE
    if compressed and not topic.endswith("/compressed"):
        topic = topic + "/compressed"
    n = 0
    with bagio.BagWriter(path, storage, overwrite=overwrite) as bag:
        for i, rgb in enumerate(frames):
            t = start_ns + i * period
            bag.write(topic, img_type, t, bagio.image_msg(rgb, t, FRAME_ID, compressed))
            if intrinsics is not None:
                bag.write(DEFAULT_INFO_TOPIC, bagio.CAMERA_INFO_TYPE, t,
                          bagio.camera_info_msg(intrinsics, t, FRAME_ID))
            gt = truth[i] if truth is not None and i < len(truth) else None
            if gt is not None:
                bag.write(TRUTH_POSE_TOPIC, bagio.POSE_TYPE, t,
                          bagio.pose_stamped_msg(gt.rotation, gt.translation, t, FRAME_ID))
                if gt.gaze is not None:
                    bag.write(TRUTH_GAZE_TOPIC, bagio.VECTOR_TYPE, t,
                              bagio.vector3_stamped_msg(gt.gaze, t, FRAME_ID))
            n += 1
    if n == 0:
        raise ValueError("no frames to write")
    return n


# -- inputs ---------------------------------------------------------------------------------


def read_camera_info_yaml(path: str | Path) -> CameraIntrinsics:
    """Intrinsics from a camera_calibration YAML (image_width, image_height, camera_matrix)."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
        k = np.asarray(doc["camera_matrix"]["data"], dtype=np.float64).reshape(3, 3)
        w, h = int(doc["image_width"]), int(doc["image_height"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a camera_calibration YAML with image_width, image_height "
                         f"and camera_matrix.data (9 numbers): {exc}") from None
    return CameraIntrinsics(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), w, h)


def _expand(inputs: Sequence[str]) -> List[Path]:
    paths: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{p}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) inside")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return paths


def iter_input_frames(inputs: Sequence[str]) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of image files, image folders and videos, in order."""
    from face3d_ros.core.io.imageio import read_image

    for p in _expand(inputs):
        if p.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(p))
            if not cap.isOpened():
                raise ValueError(f"{p}: OpenCV cannot open this video")
            try:
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        break
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            finally:
                cap.release()
            continue
        img = read_image(p)
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        if img.dtype != np.uint8:
            img = (img >> 8).astype(np.uint8)
        yield np.ascontiguousarray(img[..., :3])


# -- registry photos: demo and test bags ----------------------------------------------------


def registry_photos() -> dict:
    """Real photos from registry packages: name -> (H, W, 3) uint8 RGB.

    "astronaut" (skimage, one face), "grace_hopper" (matplotlib sample, one face), "chelsea"
    (skimage, a cat: no human face).
    """
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = matplotlib.image.imread(f, format="jpeg")
    return {"astronaut": np.ascontiguousarray(skimage.data.astronaut()[..., :3]),
            "grace_hopper": np.ascontiguousarray(hopper[..., :3]).astype(np.uint8),
            "chelsea": np.ascontiguousarray(skimage.data.chelsea()[..., :3])}


def letterbox(rgb: np.ndarray, width: int = 512, height: int = 384) -> np.ndarray:
    """The image shrunk (never enlarged) to fit a ``width`` x ``height`` canvas, centred on
    black (uint8 RGB)."""
    h, w = rgb.shape[:2]
    s = min(1.0, width / w, height / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def demo_frames(still: int = 5, size: Tuple[int, int] = (512, 384)) -> List[np.ndarray]:
    """Frames of the demo/test bag: astronaut (``still`` identical frames: a still segment
    for jitter), grace hopper (3 frames), chelsea (2 frames, no face), all letterboxed."""
    photos = {k: letterbox(v, *size) for k, v in registry_photos().items()}
    return ([photos["astronaut"]] * still + [photos["grace_hopper"]] * 3
            + [photos["chelsea"]] * 2)


def rotate_image(rgb: np.ndarray, angle_deg: float,
                 center: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """The image rotated in-plane by ``angle_deg`` (positive = counter-clockwise) about
    ``center`` (px; default the image centre), black outside."""
    h, w = rgb.shape[:2]
    c = (w / 2.0, h / 2.0) if center is None else center
    m = cv2.getRotationMatrix2D(c, float(angle_deg), 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def camera_roll(angle_deg: float) -> np.ndarray:
    """(3, 3) rotation of the camera optical frame that turns the image content
    counter-clockwise by ``angle_deg`` about the principal point (about the optical axis)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    # Optical frame: x right, y down. Counter-clockwise on screen takes +x towards -y.
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_sequence(upright: np.ndarray, angles_deg: Sequence[float], reference: Truth,
                      repeat: int = 1) -> Tuple[List[np.ndarray], List[Truth]]:
    """Frames of ``upright`` rotated through ``angles_deg`` (each ``repeat`` times) and truth.

    The image is rotated about its centre, which must be the principal point of the intrinsics
    used (true for the default ideal camera). That equals turning the camera about its optical
    axis, so the face's pose becomes ``camera_roll(a) @ reference``: the in-plane angle is known
    exactly; ``reference`` (the pose of the face in the upright image) is not, and must come
    from elsewhere (see docs/eval.md, "Ground truth").
    """
    frames, truth = [], []
    for a in angles_deg:
        r = camera_roll(a)
        gaze = None if reference.gaze is None else r @ reference.gaze
        gt = Truth(r @ reference.rotation, r @ reference.translation, gaze)
        for _ in range(repeat):
            frames.append(rotate_image(upright, a))
            truth.append(gt)
    return frames, truth


# -- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of face3d-bag-make."""
    p = argparse.ArgumentParser(
        prog="face3d-bag-make",
        description="Write images, image folders or videos as a ROS 2 bag (sensor_msgs/Image "
                    "and optionally CameraInfo) for face3d-eval.")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_VIDEO",
                   help="image files, folders of images (sorted by name) or video files")
    p.add_argument("-o", "--output", required=True, metavar="BAG", help="bag folder to write")
    p.add_argument("--rate", type=float, default=10.0, metavar="HZ",
                   help="frames per second of the stamps (default 10)")
    p.add_argument("--camera-info", metavar="YAML",
                   help="camera_calibration YAML; writes /camera/camera_info beside the images")
    p.add_argument("--storage", choices=bagio.STORAGES, default="mcap",
                   help="rosbag2 storage format (default mcap)")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"image topic (default {DEFAULT_TOPIC})")
    p.add_argument("--compressed", action="store_true",
                   help="write JPEG sensor_msgs/CompressedImage on TOPIC/compressed")
    p.add_argument("--force", action="store_true", help="replace an existing output bag")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of face3d-bag-make; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        intr = read_camera_info_yaml(args.camera_info) if args.camera_info else None
        n = write_bag(args.output, iter_input_frames(args.inputs), args.rate, args.storage,
                      args.topic, intr, args.compressed, overwrite=args.force)
    except (ValueError, bagio.BagError) as exc:
        print(f"face3d-bag-make: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} frames to {args.output} ({args.storage}, {args.rate:g} Hz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
