"""face3d-eval: replay a ROS 2 bag through face3d; results bag, metrics.json and report.html.

    face3d-eval BAG [--topic IMAGE_TOPIC] [--camera-info TOPIC] [--out DIR]
                [--mode offline|live] [--rate X] [--device DEV] [--backend BACKEND]
                [--params config.yaml]
    face3d-eval --compare RUN_A RUN_B [--tol-deg 1.0] [--latency-tol 0.5]

offline: the engine and tracker run in this process on every frame, as fast as the device
allows (deterministic). live: the real node (``face3d_node``) runs as its own process; the bag
is published at its recorded rate (times ``--rate``) over DDS and the node's ``faces`` and
``face_markers`` are recorded: end-to-end latency and dropped frames. rclpy is imported only in
live mode.

Outputs in ``--out``: ``results/`` (mcap bag: Face3DArray on ``/face3d/faces``, stamped like the
source frames, plus the node's markers in live mode), ``metrics.json``, ``frames.json`` and
``report.html``. Exit status: 0 done; 1 ``--compare`` found differences; 2 bad arguments or an
unusable bag (e.g. several image topics and no ``--topic``); 3 the bag is damaged: results of
the frames read before the damage were written. Schemas: docs/eval.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from face3d_ros.core.io import metrics as M
from face3d_ros.ros.input_size import header_seconds, track_frame
from face3d_ros.tools import bagio
from face3d_ros.tools.eval_compare import _short, compare
from face3d_ros.tools.eval_input import (  # noqa: F401 - the tool's names, re-exported
    EXIT_DAMAGED, EXIT_DIFFERENT, EXIT_OK, EXIT_USAGE, MARKERS_TOPIC, RESULTS_TOPIC, BagInput,
    EvalError, FaceRecord, FrameRecord, Progress, _face_from_result, configs, iter_images,
    load_params, node_settings, scan_bag)
from face3d_ros.tools.eval_live import run_live

SCHEMA_VERSION = 1


# -- offline --------------------------------------------------------------------------------


def run_offline(reader, inp: BagInput, args, out_bag: bagio.BagWriter) -> Tuple[list, dict]:
    """Engine + tracker on every frame; returns (frame records, run info)."""
    from face3d_ros.core.pipeline.engine import FaceEngine
    from face3d_ros.core.pipeline.tracking import FaceTracker

    cfg = configs(load_params(args.params), args.device, args.backend)
    eng_cfg, trk_cfg = cfg.engine, cfg.tracker
    engine = FaceEngine(eng_cfg)
    if engine.device_warning:
        print(f"face3d-eval: {engine.device_warning}", file=sys.stderr)
    tracker = FaceTracker(engine, trk_cfg)
    settings = node_settings(cfg)
    records = []
    progress = Progress(inp.image.count, not args.quiet)
    t0 = time.perf_counter()
    for rec, rgb, frame_id, intr, msg in iter_images(reader, inp, settings):
        result = track_frame(tracker, rgb, intr, header_seconds(msg.header),
                             settings.max_image_side).result
        rec.timings_ms = dict(result.timings_ms)
        rec.faces = [_face_from_result(f) for f in result.faces]
        rec.faces_dropped = int(result.faces_dropped)
        out_bag.write(RESULTS_TOPIC, bagio.FACE_ARRAY_TYPE, rec.log_ns,
                      bagio.face_array_msg(result, rec.stamp_ns, frame_id))
        records.append(rec)
        progress.update(len(records))
    wall = time.perf_counter() - t0
    progress.update(len(records), final=True)
    from dataclasses import asdict

    info = {"device": str(engine.device), "backend": engine.backend, "wall_s": wall,
            "params": {"engine": asdict(eng_cfg), "tracker": asdict(trk_cfg),
                       "node": asdict(cfg.node)}}
    return records, info


# -- metrics --------------------------------------------------------------------------------


def _largest(faces: List[FaceRecord]) -> Optional[FaceRecord]:
    if not faces:
        return None
    return max(faces, key=lambda f: float(np.prod(f.sample.box[2:] - f.sample.box[:2])))


def truth_errors(records: Sequence[FrameRecord], inp: BagInput) -> Optional[dict]:
    """Errors of the largest face of each frame against the truth topics (None without)."""
    if not inp.truth_pose and not inp.truth_gaze:
        return None
    from face3d_ros.core.pipeline.geometry import euler_from_rotation

    est: Dict[str, List[float]] = {k: [] for k in ("yaw", "pitch", "roll")}
    tru: Dict[str, List[float]] = {k: [] for k in ("yaw", "pitch", "roll")}
    rot_err, gaze_err = [], []
    with_truth = missed = 0
    for r in records:
        pose = inp.truth_pose.get(r.stamp_ns)
        gaze = inp.truth_gaze.get(r.stamp_ns)
        if pose is None and gaze is None:
            continue
        with_truth += 1
        face = _largest(r.faces)
        if face is None:
            missed += 1
            continue
        if pose is not None:
            ypr = euler_from_rotation(pose[0][None], pose[1][None])[0]
            for k, v in zip(("yaw", "pitch", "roll"), ypr):
                tru[k].append(float(v))
                est[k].append(float(getattr(face.sample, k)))
            rel = face.rotation.T @ pose[0]
            rot_err.append(float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1)))))
        if gaze is not None:
            a, b = gaze / np.linalg.norm(gaze), face.gaze_direction
            gaze_err.append(float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0)))))
    out: dict = {"frames_with_truth": with_truth, "frames_without_face": missed}
    if inp.truth_pose:
        out["head"] = {k: M.angle_errors(est[k], tru[k]) for k in est}
        out["head"]["rotation"] = M.angle_errors(rot_err, np.zeros(len(rot_err)))
    if inp.truth_gaze:
        out["gaze"] = {"direction": M.angle_errors(gaze_err, np.zeros(len(gaze_err)))}
    return out


def compute_metrics(records: Sequence[FrameRecord], inp: BagInput, run: dict,
                    mode: str) -> dict:
    """The metrics.json document of a run."""
    done = [r for r in records if not r.dropped]
    faces = [[f.sample for f in r.faces] for r in done]
    wall = run.get("wall_s") or 0.0
    seg = M.still_segments([r.still for r in done])
    fpf = M.faces_per_frame(faces)
    return {
        "schema": SCHEMA_VERSION, "tool": "face3d-eval", "mode": mode,
        "frames": len(records), "frames_processed": len(done),
        "dropped_frames": (len(records) - len(done)) if mode == "live" else None,
        "faces": int(sum(len(f) for f in faces)),
        "faces_dropped": M.faces_dropped([r.faces_dropped for r in done]),
        "frames_with_face": int(sum(1 for f in faces if f)),
        "share_with_face": fpf["share_with_face"], "faces_per_frame": fpf,
        "latency_ms": M.latency([r.timings_ms for r in done]),
        "throughput_fps": (len(done) / wall) if wall > 0 else None, "wall_s": wall,
        "tracking": M.tracking(faces, [r.cut for r in done]),
        "jitter": M.jitter(faces, seg),
        "truth": truth_errors(done, inp),
    }


def frames_document(records: Sequence[FrameRecord]) -> List[dict]:
    """frames.json: per-frame summary (no landmarks)."""
    out = []
    for r in records:
        out.append({
            "index": r.index, "stamp_ns": r.stamp_ns, "log_ns": r.log_ns,
            "width": r.width, "height": r.height, "still": r.still, "cut": r.cut,
            "dropped": r.dropped, "timings_ms": {k: round(v, 3) for k, v in r.timings_ms.items()},
            "faces": [{"id": f.sample.track_id, "score": round(f.score, 4),
                       "box": [round(float(v), 2) for v in f.sample.box],
                       **{k: round(float(getattr(f.sample, k)), 3) for k in M.ANGLES}}
                      for f in r.faces]})
    return out


# -- main -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of face3d-eval."""
    p = argparse.ArgumentParser(
        prog="face3d-eval",
        description="Replay a ROS 2 bag (mcap or sqlite3) through face3d: results bag, "
                    "metrics.json and report.html; or compare two runs.")
    p.add_argument("bag", nargs="?", help="bag folder, .mcap or .db3 file")
    p.add_argument("--topic", help="image topic (needed when the bag has several)")
    p.add_argument("--camera-info", help="CameraInfo topic (default: the only one, if any)")
    p.add_argument("--truth-pose", help="ground-truth head pose topic (PoseStamped)")
    p.add_argument("--truth-gaze", help="ground-truth gaze direction topic (Vector3Stamped)")
    p.add_argument("--out", help="output folder (default eval_out/<bag name>)")
    p.add_argument("--mode", choices=("offline", "live"), default="offline")
    p.add_argument("--rate", type=float, default=1.0,
                   help="live: replay speed, times the recorded rate (default 1)")
    p.add_argument("--device", help="torch device (auto, cpu, cuda, cuda:N)")
    p.add_argument("--backend", choices=("auto", "torch", "litert"),
                   help="inference backend (default: the params file's, else auto)")
    p.add_argument("--params", help="node parameters YAML (config/face3d.yaml format)")
    p.add_argument("--node-timeout", type=float, default=120.0,
                   help="live: seconds to wait for the node to start")
    p.add_argument("--drain-s", type=float, default=3.0,
                   help="live: seconds to wait for results after the last frame")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"),
                   help="compare two output folders; exit 1 when they differ")
    p.add_argument("--tol-deg", type=float, default=1.0,
                   help="compare: angle difference (deg) that counts as a change")
    p.add_argument("--latency-tol", type=float,
                   help="compare: relative latency/throughput change that counts (default: "
                        "latency is shown, never flagged)")
    return p


def evaluate(args) -> int:
    """Run one evaluation; returns the exit status."""
    if not args.bag:
        raise EvalError("give a BAG to evaluate, or --compare RUN_A RUN_B")
    if args.rate <= 0:
        raise EvalError(f"--rate must be > 0, got {args.rate}")
    out = Path(args.out or Path("eval_out") / Path(args.bag).resolve().name)
    args.out = str(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        reader = bagio.BagReader(args.bag)
    except bagio.BagError as exc:
        raise EvalError(str(exc)) from None
    with reader:
        if reader.damage:
            print(f"face3d-eval: warning: {reader.damage}", file=sys.stderr)
        inp = scan_bag(reader, args)
        with bagio.BagWriter(out / "results", "mcap", overwrite=True) as out_bag:
            runner = run_live if args.mode == "live" else run_offline
            records, run = runner(reader, inp, args, out_bag)
        damage = reader.damage
    if not records:
        raise EvalError(f"no image could be read from {inp.image.name}"
                        + (f" ({damage})" if damage else ""), EXIT_DAMAGED if damage else 2)
    metrics = compute_metrics(records, inp, run, args.mode)
    metrics.update({"bag": str(Path(args.bag).resolve()), "storage": reader.storage,
                    "image_topic": inp.image.name, "camera_info_topic": inp.info_topic,
                    "bag_damage": damage, "device": run.get("device"),
                    "params": run.get("params")})
    metrics.update({k: run[k] for k in ("unmatched_results", "markers_received") if k in run})
    frames = frames_document(records)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
    (out / "frames.json").write_text(json.dumps(frames, indent=1))
    if not args.no_report:
        from face3d_ros.tools.report import write_report

        write_report(out, json.loads((out / "metrics.json").read_text()), frames)
    lat = metrics["latency_ms"].get("end_to_end" if args.mode == "live" else "total", {})
    print(f"{metrics['frames']} frames, {metrics['faces']} faces, "
          f"{metrics['tracking']['track_count']} tracks, latency p50 {_short(lat.get('p50'))} "
          f"ms p95 {_short(lat.get('p95'))} ms"
          + (f", {metrics['dropped_frames']} dropped" if args.mode == "live" else "")
          + f" -> {out}")
    if damage:
        print(f"face3d-eval: error: {damage}; results of the frames before the damage are in "
              f"{out}", file=sys.stderr)
        return EXIT_DAMAGED
    return EXIT_OK


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of face3d-eval; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    try:
        if args.compare:
            return compare(args.compare[0], args.compare[1], args.tol_deg, args.latency_tol)
        return evaluate(args)
    except EvalError as exc:
        print(f"face3d-eval: error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
