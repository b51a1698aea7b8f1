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
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from face3d_ros.core import metrics as M
from face3d_ros.core.face_fields import face_from_message
from face3d_ros.ros.camera_info import (CAMERA_INFO_KEEP, CAMERA_INFO_WAIT_S,
                                        camera_info_to_intrinsics, select_camera_info)
from face3d_ros.ros.input_size import track_frame
from face3d_ros.tools import bagio
from face3d_ros.tools.node_process import node_command, stop_node

SCHEMA_VERSION = 1
EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE, EXIT_DAMAGED = 0, 1, 2, 3
RESULTS_TOPIC = "/face3d/faces"
MARKERS_TOPIC = "/face3d/face_markers"
#: Mean absolute pixel difference below which a frame counts as a repeat of the previous one.
STILL_DIFF = 0.5
#: Mean absolute pixel difference above which a frame starts a new scene.
CUT_DIFF = 25.0


class EvalError(RuntimeError):
    """A problem the user must fix; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FaceRecord:
    """One face of one frame, as far as the evaluation needs it (angles in degrees)."""

    sample: M.FaceSample
    score: float
    rotation: np.ndarray
    translation: np.ndarray
    gaze_direction: np.ndarray


@dataclass
class FrameRecord:
    """One source frame and what came out of it."""

    index: int
    log_ns: int
    stamp_ns: int
    width: int
    height: int
    still: bool = False
    cut: bool = False
    dropped: bool = False
    faces: List[FaceRecord] = field(default_factory=list)
    timings_ms: Dict[str, float] = field(default_factory=dict)
    faces_dropped: Optional[int] = None  # beyond max_faces (offline; None: not known, live)


# -- parameters -----------------------------------------------------------------------------


def load_params(path: Optional[str]) -> Dict[str, object]:
    """Parameter name -> value from a node params YAML (``/**: ros__parameters:``) or a flat
    mapping."""
    if not path:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EvalError(f"--params {path}: cannot read it: {exc}") from None
    if not isinstance(doc, dict):
        raise EvalError(f"--params {path}: expected a mapping of parameter names to values")
    for value in doc.values():  # node-name level
        if isinstance(value, dict) and isinstance(value.get("ros__parameters"), dict):
            return dict(value["ros__parameters"])
    return dict(doc)


def configs(params: Dict[str, object], device: Optional[str], backend: Optional[str] = None):
    """(EngineConfig, TrackerConfig) from parameters; unknown engine/tracker names are errors,
    node-only parameters are ignored offline."""
    from dataclasses import fields

    from face3d_ros.core.config import EngineConfig, TrackerConfig

    eng_names = {f.name for f in fields(EngineConfig)}
    trk_names = {f.name for f in fields(TrackerConfig)}
    eng = {k: v for k, v in params.items() if k in eng_names}
    if eng.get("model_dir") == "":
        eng["model_dir"] = None
    if device:
        eng["device"] = device
    if backend:
        eng["backend"] = backend
    trk = {k: v for k, v in params.items() if k in trk_names}
    try:
        return EngineConfig(**eng), TrackerConfig(**trk)
    except (TypeError, ValueError) as exc:
        raise EvalError(f"--params: {exc}") from None


# -- reading the bag ------------------------------------------------------------------------


@dataclass
class BagInput:
    """What the evaluation takes from a bag besides the images."""

    image: bagio.TopicInfo
    info_topic: Optional[str]
    camera_infos: List[Tuple[int, object]]  # (log time ns, CameraInfo), log order
    truth_pose: Dict[int, Tuple[np.ndarray, np.ndarray]]
    truth_gaze: Dict[int, np.ndarray]


def _single(topics: Sequence[bagio.TopicInfo], msgtype: str, requested: Optional[str],
            what: str) -> Optional[str]:
    if requested:
        if not any(t.name == requested for t in topics):
            raise EvalError(f"{what} topic {requested} is not in the bag")
        return requested
    cands = [t.name for t in topics if t.msgtype == msgtype]
    if len(cands) > 1:
        raise EvalError(f"the bag has several {what} topics ({', '.join(cands)}); choose one")
    return cands[0] if cands else None


def scan_bag(reader: bagio.BagReader, args) -> BagInput:
    """Pick the topics and read camera_info and ground truth (first pass over the bag)."""
    try:
        image = bagio.pick_image_topic(reader.topics, args.topic)
    except bagio.BagError as exc:
        raise EvalError(str(exc)) from None
    info = _single(reader.topics, bagio.CAMERA_INFO_TYPE, args.camera_info, "CameraInfo")
    pose_t = _single(reader.topics, bagio.POSE_TYPE, args.truth_pose, "PoseStamped (truth)")
    gaze_t = _single(reader.topics, bagio.VECTOR_TYPE, args.truth_gaze,
                     "Vector3Stamped (truth)")
    inp = BagInput(image, info, [], {}, {})
    wanted = [t for t in (info, pose_t, gaze_t) if t]
    if wanted:
        for topic, msgtype, log_ns, raw in reader.messages(wanted):
            msg = bagio.deserialize(raw, msgtype)
            key = bagio.stamp_ns(msg)
            if topic == info:
                inp.camera_infos.append((log_ns, msg))
            elif topic == pose_t:
                inp.truth_pose[key] = bagio.pose_from_msg(msg)
            else:
                v = msg.vector
                inp.truth_gaze[key] = np.array([v.x, v.y, v.z])
    return inp


@dataclass(frozen=True)
class NodeSettings:
    """The node parameters that decide what the node processes, besides the engine and the
    tracker: whether camera_info is used, the assumed field of view without one, and the input
    size policy."""

    use_camera_info: bool
    default_hfov_deg: float
    max_image_side: int


def node_settings(params: Dict[str, object], engine_cfg) -> NodeSettings:
    """The :class:`NodeSettings` of ``params`` (the node's defaults where not given)."""
    from face3d_ros.ros.params import NodeConfig

    base = NodeConfig()
    return NodeSettings(bool(params.get("use_camera_info", base.use_camera_info)),
                        float(engine_cfg.default_hfov_deg),
                        int(params.get("max_image_side", base.max_image_side)))


def _intrinsics_for(inp: BagInput, log_ns: int, stamp: int, width: int, height: int,
                    settings: NodeSettings):
    """The intrinsics the node would use for an image logged at ``log_ns`` with header
    ``stamp`` (ns): the node's camera_info policy (``ros.camera_info``) over the infos
    recorded up to the image (and those the node would still wait for); None when
    use_camera_info is false (the engine then assumes its field of view)."""
    if not settings.use_camera_info:
        return None
    horizon = log_ns + int(CAMERA_INFO_WAIT_S * 1e9)
    received = [m for t, m in inp.camera_infos if t <= horizon][-CAMERA_INFO_KEEP:]
    info, _ = select_camera_info(received, (stamp // 10**9, stamp % 10**9), width, height)
    intr, _ = camera_info_to_intrinsics(info, width, height, settings.default_hfov_deg)
    return intr


class Progress:
    """Frames done, rate and time left on stderr, at most once a second."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self.t0 = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        """Report ``done`` frames."""
        now = time.monotonic()
        if not self.enabled or (not final and now - self.last < 1.0):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        left = (self.total - done) / rate if rate > 0 and self.total else 0.0
        pct = f" ({100.0 * done / self.total:.0f}%)" if self.total else ""
        print(f"face3d-eval: {done}/{self.total or '?'} frames{pct}, {rate:.1f} frames/s, "
              f"~{left:.0f} s left", file=sys.stderr, flush=True)


def iter_images(reader: bagio.BagReader, inp: BagInput, settings: Optional[NodeSettings] = None):
    """(FrameRecord, rgb, header frame_id, intrinsics or None, message) of every decodable
    image; the intrinsics by the node's policy (None without ``settings``)."""
    prev = None
    index = 0
    for _, msgtype, log_ns, raw in reader.messages([inp.image.name]):
        msg = bagio.deserialize(raw, msgtype)
        try:
            rgb = bagio.image_to_rgb(msg, msgtype)
        except ValueError as exc:
            print(f"face3d-eval: frame {index} skipped: {exc}", file=sys.stderr)
            index += 1
            continue
        h, w = rgb.shape[:2]
        rec = FrameRecord(index, log_ns, bagio.stamp_ns(msg), w, h)
        small = rgb[::4, ::4].astype(np.int16)
        if prev is None or prev.shape != small.shape:
            rec.cut = prev is not None
        else:
            diff = float(np.abs(small - prev).mean())
            rec.still, rec.cut = diff < STILL_DIFF, diff > CUT_DIFF
        prev = small
        intr = (None if settings is None else
                _intrinsics_for(inp, log_ns, rec.stamp_ns, w, h, settings))
        yield rec, rgb, msg.header.frame_id, intr, msg
        index += 1


def _face_from_result(f) -> FaceRecord:
    p = f.head_pose
    s = M.FaceSample(int(f.track_id), np.asarray(f.box, float), p.yaw, p.pitch, p.roll,
                     f.gaze.combined.yaw, f.gaze.combined.pitch,
                     np.asarray(f.landmarks_2d)[:, :2].copy())
    return FaceRecord(s, float(f.score), np.asarray(p.rotation), np.asarray(p.translation),
                      np.asarray(f.gaze.combined.direction))


def _face_from_msg(f) -> FaceRecord:
    return _face_from_result(face_from_message(f))


# -- offline --------------------------------------------------------------------------------


def run_offline(reader, inp: BagInput, args, out_bag: bagio.BagWriter) -> Tuple[list, dict]:
    """Engine + tracker on every frame; returns (frame records, run info)."""
    from face3d_ros.core.engine import FaceEngine
    from face3d_ros.core.tracking import FaceTracker

    eng_cfg, trk_cfg = configs(load_params(args.params), args.device, args.backend)
    engine = FaceEngine(eng_cfg)
    if engine.device_warning:
        print(f"face3d-eval: {engine.device_warning}", file=sys.stderr)
    tracker = FaceTracker(engine, trk_cfg)
    settings = node_settings(load_params(args.params), eng_cfg)
    records = []
    progress = Progress(inp.image.count, not args.quiet)
    t0 = time.perf_counter()
    for rec, rgb, frame_id, intr, _ in iter_images(reader, inp, settings):
        result, _ = track_frame(tracker, rgb, intr, rec.stamp_ns * 1e-9,
                                settings.max_image_side)
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
            "params": {"engine": asdict(eng_cfg), "tracker": asdict(trk_cfg)}}
    return records, info


# -- live -----------------------------------------------------------------------------------


def _node_command(ns: str, args) -> List[str]:
    try:
        cmd = node_command()
    except FileNotFoundError as exc:
        raise EvalError(str(exc)) from None
    # Reliable input: the player publishes whole raw frames of several hundred kB on this
    # host, which best effort loses in fragments (docs/ros.md); a --params file may override.
    cmd += ["--ros-args", "-r", f"__ns:={ns}", "-p", "publish_debug_image:=false",
            "-p", "input_reliability:=reliable"]
    if args.device:
        cmd += ["-p", f"device:={args.device}"]
    if args.backend:
        cmd += ["-p", f"backend:={args.backend}"]
    if args.params:
        cmd += ["--params-file", str(Path(args.params).resolve())]
    return cmd


def run_live(reader, inp: BagInput, args, out_bag: bagio.BagWriter) -> Tuple[list, dict]:
    """Publish the bag to the real node over DDS and record what it publishes."""
    try:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from face3d_msgs.msg import Face3DArray
        from visualization_msgs.msg import MarkerArray
    except ImportError as exc:
        raise EvalError(f"--mode live needs rclpy and the built face3d_msgs ({exc}); run "
                        "scripts/setup.sh once, then `source scripts/env.sh` (docs/install.md)"
                        ", or use --mode offline") from None

    ns = f"/face3d_eval_{os.getpid()}"
    compressed = inp.image.msgtype == bagio.COMPRESSED_TYPE
    cmd = _node_command(ns, args)
    if compressed:
        cmd += ["-p", "use_compressed:=true"]
    log_path = Path(args.out) / "node.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("face3d_eval_player", context=ctx)
    lock = threading.Lock()
    received: List[Tuple[float, bytes]] = []
    markers: List[Tuple[float, bytes]] = []
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Face3DArray, f"{ns}/faces",
                             lambda raw: _append(lock, received, raw), reliable, raw=True)
    node.create_subscription(MarkerArray, f"{ns}/face_markers",
                             lambda raw: _append(lock, markers, raw), reliable, raw=True)
    img_topic = f"{ns}/image/compressed" if compressed else f"{ns}/image"
    img_pub = node.create_publisher(CompressedImage if compressed else Image, img_topic,
                                    QoSProfile(depth=1))
    info_pub = node.create_publisher(CameraInfo, f"{ns}/camera_info",
                                     QoSProfile(depth=CAMERA_INFO_KEEP))
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    records: List[FrameRecord] = []
    sent: Dict[int, float] = {}
    try:
        deadline = time.monotonic() + args.node_timeout
        while img_pub.get_subscription_count() == 0 or \
                node.count_publishers(f"{ns}/faces") == 0:
            if proc.poll() is not None:
                raise EvalError(f"face3d_node exited with status {proc.returncode} before "
                                f"it was ready; its log: {log_path}\n{_tail(log_path)}", 1)
            if time.monotonic() > deadline:
                raise EvalError(f"face3d_node was not ready after {args.node_timeout:.0f} s "
                                f"(log: {log_path})", 1)
            time.sleep(0.1)
        time.sleep(0.5)  # let discovery settle in both directions
        progress = Progress(inp.image.count, not args.quiet)
        t_start, first_log = time.monotonic(), None
        infos_sent = 0
        for rec, _, _, _, msg in iter_images(reader, inp):
            first_log = rec.log_ns if first_log is None else first_log
            due = t_start + (rec.log_ns - first_log) * 1e-9 / args.rate
            time.sleep(max(0.0, due - time.monotonic()))
            # The recorded camera_infos up to the image (and those the node would still wait
            # for), in their recorded order: the node applies its own policy to them, as the
            # offline run does (``_intrinsics_for``).
            horizon = rec.log_ns + int(CAMERA_INFO_WAIT_S * 1e9)
            while infos_sent < len(inp.camera_infos) and \
                    inp.camera_infos[infos_sent][0] <= horizon:
                info_pub.publish(bagio.serialize(inp.camera_infos[infos_sent][1],
                                                 bagio.CAMERA_INFO_TYPE))
                infos_sent += 1
            sent[rec.stamp_ns] = time.monotonic()
            img_pub.publish(bagio.serialize(msg, inp.image.msgtype))
            records.append(rec)
            progress.update(len(records))
        progress.update(len(records), final=True)
        t_end = time.monotonic()
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() - last_change < args.drain_s:  # wait for the last results
            with lock:
                n = len(received)
            if n != last_count:
                last_count, last_change = n, time.monotonic()
            if n >= len(records):
                break
            time.sleep(0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        ctx.try_shutdown()
        stop_node(proc, timeout_s=10.0)
        log.close()

    by_stamp = {r.stamp_ns: r for r in records}
    log_of = {r.stamp_ns: r.log_ns for r in records}
    unmatched = 0
    for t_recv, raw in received:
        msg = bagio.deserialize(raw, bagio.FACE_ARRAY_TYPE)
        key = bagio.stamp_ns(msg)
        rec = by_stamp.get(key)
        if rec is None:
            unmatched += 1
            continue
        rec.timings_ms = {"end_to_end": (t_recv - sent[key]) * 1e3}
        rec.faces = [_face_from_msg(f) for f in msg.faces]
        out_bag.write_raw(RESULTS_TOPIC, bagio.FACE_ARRAY_TYPE, log_of[key], raw)
    for _, raw in markers:  # log each marker array at its source frame's log time
        arr = bagio.deserialize(raw, bagio.MARKER_ARRAY_TYPE)
        key = bagio.stamp_ns(arr.markers[0]) if arr.markers else None
        if key in log_of:
            out_bag.write_raw(MARKERS_TOPIC, bagio.MARKER_ARRAY_TYPE, log_of[key], raw)
    results = {r.stamp_ns for r in records if r.timings_ms}
    for r in records:
        r.dropped = r.stamp_ns not in results
    info = {"device": args.device or "node default", "wall_s": t_end - t_start,
            "params": load_params(args.params), "node_command": " ".join(cmd),
            "unmatched_results": unmatched, "markers_received": len(markers)}
    return records, info


def _append(lock: threading.Lock, store: list, raw: bytes) -> None:
    with lock:
        store.append((time.monotonic(), raw))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- metrics --------------------------------------------------------------------------------


def _largest(faces: List[FaceRecord]) -> Optional[FaceRecord]:
    if not faces:
        return None
    return max(faces, key=lambda f: float(np.prod(f.sample.box[2:] - f.sample.box[:2])))


def truth_errors(records: Sequence[FrameRecord], inp: BagInput) -> Optional[dict]:
    """Errors of the largest face of each frame against the truth topics (None without)."""
    if not inp.truth_pose and not inp.truth_gaze:
        return None
    from face3d_ros.core.geometry import euler_from_rotation

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


# -- compare --------------------------------------------------------------------------------


def _flat(d, prefix: str = "") -> Dict[str, object]:
    out: Dict[str, object] = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _load_run(path: str) -> Tuple[dict, List[dict]]:
    p = Path(path)
    try:
        metrics = json.loads((p / "metrics.json").read_text())
        frames = json.loads((p / "frames.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"{p}: not a face3d-eval output folder (metrics.json, frames.json): "
                        f"{exc}") from None
    return metrics, frames


def compare(run_a: str, run_b: str, tol_deg: float = 1.0, latency_tol: Optional[float] = None,
            out=sys.stdout) -> int:
    """Print metrics side by side and per-frame differences; 1 when something differs."""
    ma, fa = _load_run(run_a)
    mb, fb = _load_run(run_b)
    flat_a, flat_b = _flat(ma), _flat(mb)
    flagged: List[str] = []
    print(f"{'metric':<44} {'A':>12} {'B':>12} {'change':>10}", file=out)
    for key in sorted(set(flat_a) | set(flat_b)):
        a, b = flat_a.get(key), flat_b.get(key)
        if key in ("bag", "schema", "tool") or key.startswith("params") or key == "wall_s":
            continue
        num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        if num:
            change = b - a
            rel = change / abs(a) if a else (0.0 if b == a else float("inf"))
            if key.startswith(("latency_ms", "throughput")):
                bad = latency_tol is not None and abs(rel) > latency_tol
            elif key.startswith(("jitter", "truth")) and isinstance(a, float):
                bad = abs(change) > tol_deg * 0.1 if "landmarks" in key else abs(change) > tol_deg
            else:
                bad = a != b
            text = f"{change:+.3g}"
        else:
            bad = a != b and key in ("bag_damage", "mode")  # others describe the run
            text = "" if a == b else "differs"
        mark = "  <-- differs" if bad else ""
        if bad:
            flagged.append(key)
        print(f"{key:<44} {_short(a):>12} {_short(b):>12} {text:>10}{mark}", file=out)
    # per frame
    by_a = {f["stamp_ns"]: f for f in fa}
    by_b = {f["stamp_ns"]: f for f in fb}
    count_diff, pose_diff = [], []
    for stamp in sorted(set(by_a) | set(by_b)):
        a, b = by_a.get(stamp), by_b.get(stamp)
        if a is None or b is None:
            count_diff.append((stamp, "missing in " + ("A" if a is None else "B")))
            continue
        if len(a["faces"]) != len(b["faces"]):
            count_diff.append((a["index"], f"{len(a['faces'])} vs {len(b['faces'])} faces"))
            continue
        for fa_, fb_ in zip(_by_box(a["faces"]), _by_box(b["faces"])):
            d = max(abs(float(M.wrap_deg(fa_[k] - fb_[k]))) for k in M.ANGLES)
            if d > tol_deg:
                pose_diff.append((a["index"], d))
    print(f"\nper frame: {len(count_diff)} frames with a different face count, "
          f"{len(pose_diff)} with an angle differing by more than {tol_deg:g} deg", file=out)
    for idx, what in count_diff[:20]:
        print(f"  frame {idx}: {what}", file=out)
    for idx, d in pose_diff[:20]:
        print(f"  frame {idx}: angles differ by up to {d:.2f} deg", file=out)
    n = len(flagged) + len(count_diff) + len(pose_diff)
    if n:
        print(f"\nDIFFERENT: {len(flagged)} metrics flagged"
              + (f" ({', '.join(flagged[:8])}{', ...' if len(flagged) > 8 else ''})"
                 if flagged else "")
              + f", {len(count_diff) + len(pose_diff)} frames differ", file=out)
        return EXIT_DIFFERENT
    print("\nSAME: no differences beyond the tolerances", file=out)
    return EXIT_OK


def _by_box(faces: List[dict]) -> List[dict]:
    return sorted(faces, key=lambda f: (f["box"][0], f["box"][1]))


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = "-" if v is None else str(v)
    return s if len(s) <= 12 else s[:11] + "~"


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
