"""face3d-eval ``--mode live``: the real node (``face3d_node``) as its own process, the bag
published over DDS at its recorded rate (times ``--rate``), the node's ``faces`` and
``face_markers`` recorded with their end-to-end latency. rclpy is imported here only.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

from face3d_ros.ros.camera_info import CAMERA_INFO_KEEP, CAMERA_INFO_WAIT_S
from face3d_ros.tools import bagio
from face3d_ros.tools.eval_input import (MARKERS_TOPIC, RESULTS_TOPIC, BagInput, EvalError,
                                         FrameRecord, Progress, _face_from_msg, iter_images,
                                         load_params)
from face3d_ros.tools.node_process import node_command, stop_node

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
