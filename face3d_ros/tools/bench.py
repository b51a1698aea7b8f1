"""face3d-bench: end-to-end and per-stage latency by face count, torch against LiteRT.

A program that prints tables, not a test. For 1, 2, 4, 8 and 16 faces in a 640x480 frame
(copies of the astronaut portrait's face tiled in a grid) it times, on each device:

* the engine with detection on every frame (stages: upload, detect, landmarks = crops + mesh
  + eye crops + iris, geometry = metric 3D + pose + gaze + expression, total);
* the tracker in steady state (ROIs carried from the last frame, detector skipped);
* Google's LiteRT runtime on the same .tflite files, same thread count: the same detector(s)
  plus, per face, one mesh and two iris calls (its API runs one face per call), i.e. the
  network time a LiteRT pipeline would spend on that frame.

Usage::

    face3d-bench [--faces 1 2 4 8 16] [--repeats 10] [--threads 2] [--device auto]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

from face3d_ros.core.config import EngineConfig, TrackerConfig
from face3d_ros.core.engine import FaceEngine
from face3d_ros.core.tracking import FaceTracker

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


def _median(samples: List[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def bench_engine(engine: FaceEngine, frame: np.ndarray, repeats: int) -> Dict[str, float]:
    """Median stage timings (ms) of detection-every-frame and of steady-state tracking."""
    engine.profile = True
    out: Dict[str, List[float]] = {}
    found = 0
    for i in range(repeats + 2):
        res = engine.process(frame)
        found = len(res.faces)
        if i >= 2:
            for k, v in res.timings_ms.items():
                out.setdefault(k, []).append(v)
    tracker = FaceTracker(engine, TrackerConfig(min_hits=1, detect_every_n=1000,
                                                smoothing=True))
    track: List[float] = []
    for i in range(repeats + 3):
        res = tracker.process(frame, stamp=i / 30.0)
        if i >= 3 and not res.detector_ran:
            track.append(res.timings_ms["total"])
    engine.profile = False
    med = {k: _median(v) for k, v in out.items()}
    med["tracking"] = _median(track)
    med["found"] = float(found)
    return med


def litert_network_ms(threads: int, repeats: int) -> Optional[Dict[str, float]]:
    """Median LiteRT ms per batch-1 call of each network, or None without ai_edge_litert."""
    from face3d_ros.tools.bench_models import bench_models

    rows = bench_models(device="cpu", batch_sizes=(1,), repeats=repeats, threads=(threads,),
                        networks=("short", "full", "mesh", "iris"))
    lite = {r.network: r.ms_per_call for r in rows if r.runtime == "litert-cpu"}
    return lite if len(lite) == 4 else None


def litert_frame_ms(lite: Dict[str, float], detector: str, faces: int) -> float:
    """LiteRT network ms for one frame: the configured detector(s), then per face one mesh and
    two iris calls."""
    det = {"short": lite["short"], "full": lite["full"],
           "both": lite["short"] + lite["full"]}[detector]
    return det + faces * (lite["mesh"] + 2 * lite["iris"])


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
    from face3d_ros.core.overlay import draw_overlay
    from face3d_ros.core.topology import load_topology

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


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark and print its table."""
    p = argparse.ArgumentParser(prog="face3d-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--faces", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch and LiteRT")
    p.add_argument("--device", default="auto", help="auto: CPU, and CUDA when present")
    p.add_argument("--detector", default="both", choices=("short", "full", "both"),
                   help="detector(s) as in EngineConfig (default both, the node's default)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = ["cpu"]
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append("cuda")
    lite = litert_network_ms(args.threads, max(args.repeats, 10))
    print(f"face3d-bench: {FRAME_W}x{FRAME_H}, detector={args.detector}, "
          f"{args.threads} CPU thread(s), torch {torch.__version__}, "
          f"{torch.cuda.get_device_name(0) if 'cuda' in devices else 'no CUDA'}")
    if lite:
        per_call = ", ".join(f"{k} {v:.2f} ms" for k, v in lite.items())
        print(f"LiteRT per call (batch 1): {per_call}")
    header = ("| device | faces | found | detect | landmarks | geometry | total (detect) "
              "| tracking | tracking fps | LiteRT nets | torch nets / LiteRT |")
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for dev in devices:
        engine = FaceEngine(EngineConfig(device=dev, detector=args.detector, max_faces=32))
        for n in args.faces:
            t = bench_engine(engine, tiled_faces(n), args.repeats)
            nets = t.get("detect", 0.0) + t.get("landmarks", 0.0)
            lite_ms = litert_frame_ms(lite, args.detector, n) if lite else None
            cells = [dev, str(n), str(int(t["found"]))]
            stages = ("detect", "landmarks", "geometry", "total", "tracking")
            cells += [f"{t.get(k, 0.0):.2f}" for k in stages]
            cells.append(f"{1000.0 / t['tracking']:.0f}")
            cells.append(f"{lite_ms:.2f}" if lite_ms else "-")
            cells.append(f"{nets / lite_ms:.2f}" if lite_ms and dev == "cpu" else "-")
            print("| " + " | ".join(cells) + " |")
            sys.stdout.flush()
    print("\nms are medians per frame; 'torch nets' = detect + landmarks stages (networks and "
          "crops); 'LiteRT nets' = the same detector(s) + faces x (mesh + 2 iris) LiteRT calls.")
    node_rows = bench_node_overhead(FaceEngine(EngineConfig(device="cpu", max_faces=32)),
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
