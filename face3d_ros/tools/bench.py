"""face3d-bench: face3d per stage against the LiteRT network time of the same frame.

A program that prints tables, not a test. For 1, 2, 4, 8 and 16 faces in a 640x480 frame
(copies of the astronaut portrait's face tiled in a grid) and for each inference backend it
times, interleaved repeat by repeat (so that load from other work hits all of them alike):

* the floor: Google's LiteRT runtime alone running the networks a frame needs, on inputs made
  beforehand: the configured detector(s) (detection frame) and, per face, one mesh and two iris
  calls (both frames), same thread count;
* the engine with detection on every frame (stages: detect, landmarks = crops + mesh + eye
  crops + iris, geometry = metric 3D + pose + gaze + expression + results, total);
* the tracker in steady state (ROIs carried from the last frame, detector skipped; stages
  landmarks, geometry and the rest: smoothing, appearance check, tracks);
* face3d's own work in those tracking and detection frames with the networks' outputs
  replayed (each network call answered from a cached call on the same batch size; letterbox,
  crops, decoding, NMS, geometry, tracking and results run as usual): the part of the frame
  face3d controls, free of the LiteRT timings' run-to-run spread;
* the detector's cost by image size (640x480, 1280x720, 1920x1080 crowds of real faces) and
  smallest face ``min_face_px`` (0: whole image only; 80; 40: tiles), and the tracker's mean
  cost per frame at 640x480 over detect_every_n cycles, whole image only against tiled;

and prints medians with each total's ratio to the floor.

Usage::

    face3d-bench [--faces 1 2 4 8 16] [--repeats 10] [--threads 2] [--device auto]
                 [--backend all|auto|torch|litert] [--detector both]

One program (over 400 lines): the floor and the engine are timed interleaved in one loop, so
their set-up and timing code belong together.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from importlib import metadata
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np
import torch

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.pipeline.models import load_face_models, litert_available
from face3d_ros.core.pipeline.tracking import FaceTracker

FRAME_W, FRAME_H = 640, 480


def tiled_faces(n: int) -> np.ndarray:
    """(480, 640, 3) uint8 frame with ``n`` copies of the astronaut's face in a grid."""
    from skimage import data

    face = data.astronaut()[10:260, 120:320]  # (250, 200, 3): the head and some margin
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cw, ch = FRAME_W // cols, FRAME_H // rows
    scale = min(cw / face.shape[1], ch / face.shape[0]) * 0.95
    tile = cv2.resize(face, (int(face.shape[1] * scale), int(face.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        y = r * ch + (ch - tile.shape[0]) // 2
        x = c * cw + (cw - tile.shape[1]) // 2
        frame[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return frame


#: Portraits of registry photos: (loader, detector box x0, y0, x1, y1 at full size, px).
PORTRAITS = (("astronaut", (174.3, 69.8, 279.4, 175.0)),
             ("grace_hopper", (157.7, 118.1, 367.6, 328.1)))


def portrait(name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB registry photo: skimage's astronaut or matplotlib's Grace Hopper."""
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    import matplotlib.image as mpimg
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(mpimg.imread(f, format="jpg"))


def crowd_frame(width: int, height: int, sizes: List[float], seed: int = 0
                ) -> tuple:
    """A ``width`` x ``height`` mosaic of real faces: one head per grid cell, face ``sizes[k]``
    px (detector box side), the portraits alternating and every other one mirrored, placed at
    a random offset inside its cell on a grey background.

    Returns the (H, W, 3) uint8 frame and the (N, 4) expected face boxes (xyxy px).
    """
    rng = np.random.default_rng(seed)
    n = len(sizes)
    cols = int(np.ceil(np.sqrt(n * width / height)))
    rows = int(np.ceil(n / cols))
    cw, ch = width // cols, height // rows
    frame = np.full((height, width, 3), 110, np.uint8)
    boxes = []
    photos = [(portrait(name), np.array(box)) for name, box in PORTRAITS]
    for k, size in enumerate(sizes):
        img, box = photos[k % len(photos)]
        side = box[2] - box[0]
        # the head and some margin: 1.7 face sides around the face box
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        half = 0.85 * side
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(img.shape[1], cx + half)), int(min(img.shape[0], cy + half))
        s = size / side
        out_size = (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s)))
        head = cv2.resize(img[y0:y1, x0:x1], out_size, interpolation=cv2.INTER_AREA)
        fb = (box - [x0, y0, x0, y0]) * s
        if (k // len(photos)) % 2:
            head = head[:, ::-1]
            fb = np.array([head.shape[1] - fb[2], fb[1], head.shape[1] - fb[0], fb[3]])
        r, c = divmod(k, cols)
        hh, hw = head.shape[:2]
        if hw > cw or hh > ch:
            raise ValueError(f"a {size} px face does not fit a {cw}x{ch} cell")
        ox = c * cw + int(rng.integers(0, cw - hw + 1))
        oy = r * ch + int(rng.integers(0, ch - hh + 1))
        frame[oy:oy + hh, ox:ox + hw] = head
        boxes.append(fb + [ox, oy, ox, oy])
    return frame, np.array(boxes, dtype=np.float64).reshape(-1, 4)


#: Crowd scenes of the tests and the bench: frame size -> face sizes (px), smallest 40.
CROWDS = {
    (640, 480): list(np.linspace(40, 90, 12)),
    (1280, 720): list(np.linspace(40, 100, 24)),
    (1920, 1080): list(np.linspace(40, 110, 48)),
}


def _median(samples: List[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


class LiteRTFloor:
    """The networks of one frame in LiteRT alone (no crops, no decoding), on fixed inputs.

    threads: LiteRT threads per call; detector: "short", "full" or "both".
    """

    def __init__(self, threads: int, detector: str, model_dir: Optional[str] = None) -> None:
        self.keys = {"short": ("short",), "full": ("full",), "both": ("short", "full")}[detector]
        self.models = load_face_models(model_dir, "cpu", self.keys + ("mesh", "iris"),
                                       backend="litert", threads=threads)
        rng = np.random.default_rng(0)
        self.inputs = {k: rng.uniform(-1 if k in self.keys else 0, 1,
                                      (1, s, s, 3)).astype(np.float32)
                       for k, s in (("short", 128), ("full", 192), ("mesh", 192), ("iris", 64))}

    def call_ms(self, key: str, repeats: int) -> float:
        """Median ms of one batch-1 call of network ``key``."""
        return _median([_timed(lambda: self.models.infer(key, self.inputs[key]))
                        for _ in range(repeats)])

    def frame(self, faces: int, detect: bool) -> None:
        """Run the networks of one frame: detector(s) when ``detect``, then per face one mesh
        and two iris calls."""
        if detect:
            for k in self.keys:
                self.models.infer(k, self.inputs[k])
        for _ in range(faces):
            self.models.infer("mesh", self.inputs["mesh"])
            self.models.infer("iris", self.inputs["iris"])
            self.models.infer("iris", self.inputs["iris"])


def bench_frames(engine: FaceEngine, floor: Optional[LiteRTFloor], frame: np.ndarray, faces: int,
                 repeats: int) -> Dict[str, float]:
    """Median ms, interleaved per repeat: LiteRT floor (detect and track frames), the engine's
    stages with detection on every frame (``det_*``) and the tracker's (``trk_*``)."""
    engine.profile = True
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1, detect_every_n=1000,
                                                smoothing=True))
    samples: Dict[str, List[float]] = {}
    found = 0
    for i in range(repeats + 3):
        keep = i >= 3  # warm-up: interpreters, caches, the tracker's first frames
        got: Dict[str, float] = {}
        if floor is not None:
            got["floor_det"] = _timed(lambda: floor.frame(faces, True))
            got["floor_trk"] = _timed(lambda: floor.frame(faces, False))
        nets0 = getattr(engine.models, "network_ms", 0.0)
        res = engine.process(frame)
        nets1 = getattr(engine.models, "network_ms", 0.0)
        found = len(res.faces)
        got.update({f"det_{k}": v for k, v in res.timings_ms.items()})
        got["det_nets"] = nets1 - nets0
        tres = tracker.process(frame, stamp=i / 30.0)
        if not tres.detector_ran:
            got.update({f"trk_{k}": v for k, v in tres.timings_ms.items()})
            got["trk_nets"] = getattr(engine.models, "network_ms", 0.0) - nets1
        if keep:
            for k, v in got.items():
                samples.setdefault(k, []).append(v)
    engine.profile = False
    med = {k: _median(v) for k, v in samples.items()}
    med["found"] = float(found)
    return med


def bench_own_work(engine: FaceEngine, faces: int, repeats: int, detect: bool = False
                   ) -> Dict[str, float]:
    """Median ms of the stages of a frame of ``faces`` faces with each network call answered
    from the first call of that network and batch size (its real outputs), so that only
    face3d's own work is timed: the tracker in steady state, or with ``detect`` the engine
    with detection on every frame (``FaceEngine.process``: letterbox, decoding and merging of
    the whole image and its tiles, then landmarks and geometry). Host inference path only
    (``models.infer``)."""
    frame = tiled_faces(faces)
    if detect:
        def run(i: int):
            return engine.process(frame)
    else:
        tracker = FaceTracker(engine, TrackerConfig(min_hits=1, detect_every_n=1000,
                                                    smoothing=True))

        def run(i: int):
            return tracker.process(frame, stamp=(5 + i) / 30.0)
    for i in range(-5, 0):  # tracks, filters and the own neutral set up with real networks
        run(i)
    models, cache = engine.models, {}
    real = models.infer

    def replay(key: str, x: np.ndarray):
        if (key, x.shape[0]) not in cache:
            cache[key, x.shape[0]] = real(key, x)
        return cache[key, x.shape[0]]

    models.infer = replay  # this engine only; restored below
    samples: Dict[str, List[float]] = {}
    try:
        for i in range(repeats + 3):
            res = run(i)
            if i >= 3 and res.detector_ran == detect:
                for k, v in res.timings_ms.items():
                    samples.setdefault(k, []).append(v)
    finally:
        del models.infer
    return {k: _median(v) for k, v in samples.items()}


def _ratio(total: float, floor: Optional[float]) -> str:
    return f"{total / floor:.2f}" if floor and floor == floor else "-"


def bench_node_overhead(engine: FaceEngine, counts: List[int], repeats: int
                        ) -> Optional[List[Dict[str, float]]]:
    """Median ms of the node's own work per frame (no DDS): decoding the Image message,
    building and serializing Face3DArray and the gaze PoseArray, the MarkerArray (as the node
    publishes it: serialized from numpy, or as a message plus its serialization where the
    self-check fails; ``markers_messages`` times the plain-message way for comparison), and
    the debug overlay. Serializing is the conversion ``publish`` does before DDS.
    None when the ROS messages are not importable (source scripts/env.sh)."""
    try:
        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from face3d_ros.ros import marker_cdr
        from face3d_ros.ros.conversions import (frame_to_msg, gaze_pose_array,
                                                image_msg_to_rgb, rgb_to_image_msg)
        from face3d_ros.ros.markers import MarkerBuilder, MarkerOptions
    except ImportError:
        return None
    from face3d_ros.core.io.overlay import draw_overlay
    from face3d_ros.core.pipeline.topology import load_topology

    triangles = load_topology(engine.config.model_dir).triangles
    builder = MarkerBuilder(MarkerOptions(), triangles)
    serialized_ok = marker_cdr.self_check()[0]
    # As the node does after loading its models: keep the long-lived objects out of the
    # garbage collector's full collections, which the many small message objects trigger.
    gc.collect()
    gc.freeze()
    header = Header(frame_id="camera_optical_frame")
    rows = []
    for n in counts:
        frame_rgb = tiled_faces(n)
        result = engine.process(frame_rgb)
        image_msg = rgb_to_image_msg(frame_rgb, header)
        steps = {
            "decode": lambda: image_msg_to_rgb(image_msg),
            "messages": lambda: (serialize_message(frame_to_msg(result, header)),
                                 serialize_message(gaze_pose_array(result, header))),
            "markers": (lambda: builder.build_serialized(result, header)) if serialized_ok
            else (lambda: serialize_message(builder.build(result, header))),
            "markers_messages": lambda: serialize_message(builder.build(result, header)),
            "debug_image": lambda: rgb_to_image_msg(draw_overlay(frame_rgb, result, triangles),
                                                    header),
        }
        row: Dict[str, float] = {"faces": float(len(result.faces))}
        for name, fn in steps.items():
            samples = []
            for i in range(repeats + 2):
                t0 = time.perf_counter()
                fn()
                if i >= 2:
                    samples.append((time.perf_counter() - t0) * 1e3)
            row[name] = _median(samples)
        rows.append(row)
    return rows


#: Cycles of detect_every_n frames per tracker in the tiled-tracking comparison.
TILE_CYCLES = 12


def bench_detection_cost(models, threads: int, repeats: int, detector: str,
                         model_dir: Optional[str]) -> None:
    """Print the detector's cost by image size and ``min_face_px`` (0: whole image only) on
    the crowds of ``CROWDS`` (found / expected faces by the whole engine), and the tracker's
    cost per frame at 640x480, whole image only (as before tiling) against tiled: the median
    over ``TILE_CYCLES`` cycles of ``detect_every_n`` = 10 frames, the two trackers' cycles
    interleaved so that load changes hit both alike."""
    print("\nDetection cost by image size and smallest face (crowds of registry portraits, "
          "faces 40-110 px), median ms:\n")
    print("| image | min_face_px | tiles | detect | total | faces found / expected |")
    print("|---|---:|---:|---:|---:|---|")
    for (w, h), sizes in CROWDS.items():
        frame, truth = crowd_frame(w, h, sizes)
        for min_face in (0, 80, 40):
            eng = FaceEngine(EngineConfig(device="cpu", threads=threads, detector=detector,
                                          min_face_px=min_face, model_dir=model_dir),
                             models=models)
            det, tot, res = [], [], None
            for i in range(repeats + 1):
                res = eng.process(frame)
                if i:
                    det.append(res.timings_ms["detect"])
                    tot.append(res.timings_ms["total"])
            boxes = np.array([f.box for f in res.faces]).reshape(-1, 4)
            found = 0
            if len(boxes):
                from face3d_ros.core.pipeline.tracking import box_iou

                found = int(((box_iou(truth, boxes) > 0.3).sum(1) >= 1).sum())
            print(f"| {w}x{h} | {min_face} | {res.detector_tiles} | {_median(det):.1f} | "
                  f"{_median(tot):.1f} | {found} / {len(truth)} |")
    print(f"\nTracking at 640x480, detect_every_n 10, ms per frame: median over {TILE_CYCLES} "
          "cycles of 10 frames, the two trackers' cycles interleaved (whole image only = before "
          "tiling):\n")
    print("| faces | whole image only | tiled (min_face_px 40) | change |")
    print("|---:|---:|---:|---:|")
    for n in (1, 8):
        frame = tiled_faces(n)
        trackers = [FaceTracker(FaceEngine(EngineConfig(device="cpu", threads=threads,
                                                        detector=detector, min_face_px=m,
                                                        model_dir=model_dir), models=models),
                                TrackerConfig(min_hits=1, detect_every_n=10)) for m in (0, 40)]
        cycles: List[List[float]] = [[], []]
        for c in range(TILE_CYCLES + 1):  # the first cycle of each warms up
            for k, tracker in enumerate(trackers):
                t0 = time.perf_counter()
                for i in range(10):
                    tracker.process(frame, stamp=(c * 10 + i) / 30.0)
                if c:
                    cycles[k].append((time.perf_counter() - t0) * 1e3 / 10)
        means = [statistics.median(x) for x in cycles]
        change = 100 * (means[1] / means[0] - 1)
        print(f"| {n} | {means[0]:.2f} | {means[1]:.2f} | {change:+.0f} % |")
    sys.stdout.flush()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and print its tables."""
    p = argparse.ArgumentParser(prog="face3d-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the networks")
    p.add_argument("--device", default="auto", help="auto: CPU, and CUDA when present")
    p.add_argument("--backend", default="all", choices=("all", "auto", "torch", "litert"),
                   help="CPU inference backend(s) to time (default all: torch and LiteRT)")
    p.add_argument("--detector", default="both", choices=("short", "full", "both"),
                   help="detector(s) as in EngineConfig (default both, the node's default)")
    p.add_argument("--model-dir", default=None)
    p.add_argument("--detection-only", action="store_true",
                   help="only the detection-cost and 640x480 tracking tables (CPU)")
    args = p.parse_args(argv)
    if args.detection_only:
        base = FaceEngine(EngineConfig(device="cpu", threads=args.threads,
                                       detector=args.detector, model_dir=args.model_dir))
        print(f"face3d-bench: detection, {args.threads} CPU thread(s), backend {base.backend}, "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        bench_detection_cost(base.models, args.threads, args.repeats, args.detector,
                             args.model_dir)
        return 0
    runs = []  # (device, backend)
    if args.device in ("auto", "cpu"):
        backends = ["torch", "litert"] if args.backend == "all" else [args.backend]
        runs += [("cpu", b) for b in backends if b != "litert" or litert_available()]
    if args.device != "cpu" and torch.cuda.is_available():
        runs.append((args.device if args.device.startswith("cuda") else "cuda", "torch"))
    floor = LiteRTFloor(args.threads, args.detector, args.model_dir) if litert_available() \
        else None
    try:
        litert_version = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        litert_version = "not installed"
    print(f"face3d-bench: {FRAME_W}x{FRAME_H}, detector={args.detector}, {args.threads} CPU "
          f"thread(s), torch {torch.__version__}, ai-edge-litert {litert_version}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA'}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if floor is not None:
        calls = ", ".join(f"{k} {floor.call_ms(k, max(args.repeats, 20)):.2f} ms"
                          for k in floor.keys + ("mesh", "iris"))
        print(f"LiteRT per call (batch 1, median): {calls}")
    results = []
    own_rows = []  # ((device, backend), faces, stages) of the host path's own work
    for dev, backend in runs:
        engine = FaceEngine(EngineConfig(device=dev, backend=backend, threads=args.threads,
                                         detector=args.detector, max_faces=32,
                                         model_dir=args.model_dir))
        for n in args.faces:
            use_floor = floor if engine.device.type == "cpu" else None
            results.append((engine.device.type, engine.backend, n,
                            bench_frames(engine, use_floor, tiled_faces(n), n, args.repeats)))
        if engine.device.type == "cpu" and (engine.backend == "litert"
                                            or not litert_available()):
            own_rows += [((engine.device.type, engine.backend), kind, n,
                          bench_own_work(engine, n, max(args.repeats, 50), kind == "detection"))
                         for kind in ("tracking", "detection") for n in args.faces]
        del engine
    print("\nDetection on every frame (FaceEngine.process), median ms:\n")
    print("| device | backend | faces | found | LiteRT floor | detect | landmarks | geometry "
          "| total | total / floor | networks | rest |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dev, backend, n, t in results:
        fl = t.get("floor_det")
        cells = [dev, backend, str(n), str(int(t["found"])), f"{fl:.2f}" if fl else "-"]
        cells += [f"{t.get('det_' + k, 0.0):.2f}"
                  for k in ("detect", "landmarks", "geometry", "total")]
        cells.append(_ratio(t["det_total"], fl))
        nets = t.get("det_nets", 0.0)
        cells += [f"{nets:.2f}", f"{t['det_total'] - nets:.2f}"] if nets else ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    print("\nTracking (detector skipped, FaceTracker.process), median ms:\n")
    print("| device | backend | faces | LiteRT floor | landmarks | geometry | other | total "
          "| total / floor | fps | networks | rest |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for dev, backend, n, t in results:
        fl = t.get("floor_trk")
        total = t.get("trk_total", float("nan"))
        other = total - t.get("trk_landmarks", 0.0) - t.get("trk_geometry", 0.0)
        cells = [dev, backend, str(n), f"{fl:.2f}" if fl else "-"]
        cells += [f"{t.get('trk_landmarks', 0.0):.2f}", f"{t.get('trk_geometry', 0.0):.2f}",
                  f"{other:.2f}", f"{total:.2f}", _ratio(total, fl), f"{1000.0 / total:.0f}"]
        nets = t.get("trk_nets", 0.0)
        cells += [f"{nets:.2f}", f"{total - nets:.2f}"] if nets else ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    if own_rows:
        print("\nface3d's own work per frame (the networks' outputs replayed), median ms:\n")
        print("| device | backend | frame | faces | detect (letterbox, decoding, NMS) "
              "| landmarks (crops, decoding) | geometry | other | total |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for (dev, backend), kind, n, t in own_rows:
            stages = [t.get(k, 0.0) for k in ("detect", "landmarks", "geometry")]
            print(f"| {dev} | {backend} | {kind} | {n} | "
                  + ("-" if kind == "tracking" else f"{stages[0]:.2f}")
                  + f" | {stages[1]:.2f} | {stages[2]:.2f} | {t['total'] - sum(stages):.2f} | "
                  f"{t['total']:.2f} |")
    bench_detection_cost(load_face_models(args.model_dir, "cpu", backend="litert"
                                          if litert_available() else "torch",
                                          threads=args.threads),
                         args.threads, args.repeats, args.detector, args.model_dir)
    print("\nLiteRT floor: the same networks in LiteRT alone on fixed inputs (detector(s) + "
          "faces x (mesh + 2 iris) single calls), timed between the frames it is compared "
          "with. networks: time inside face3d's own network calls on the same frame (LiteRT "
          "runs a batch's images two at a time on two single-thread interpreters); rest: "
          "total - networks (crops, decoding, geometry, tracking, results). On CUDA no floor.")
    sys.stdout.flush()
    node_rows = bench_node_overhead(FaceEngine(EngineConfig(device="cpu", max_faces=32,
                                                            threads=args.threads,
                                                            model_dir=args.model_dir)),
                                    [1, 8], args.repeats)
    if node_rows is None:
        print("\n(node overhead: ROS messages not importable; source scripts/env.sh)")
        return 0
    print("\nNode overhead per frame (CPU, no DDS; messages built and serialized), ms:\n")
    print("| faces | decode | Face3DArray + gaze | markers | overhead (sum) | debug image "
          "| markers as plain messages |")
    print("|---|---|---|---|---|---|---|")
    for r in node_rows:
        total = r["decode"] + r["messages"] + r["markers"]
        print(f"| {int(r['faces'])} | {r['decode']:.2f} | {r['messages']:.2f} | "
              f"{r['markers']:.2f} | {total:.2f} | {r['debug_image']:.2f} | "
              f"{r['markers_messages']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
