#!/usr/bin/env python3
"""Soak and flood the installed face3d_node over real DDS; print RSS and latency figures.

    source scripts/env.sh
    python scripts/soak.py                       # 10 min at 30 Hz with 4 faces, 2 min at 100 Hz
    python scripts/soak.py --soak-s 120 --flood-s 60   # shorter

Starts ``face3d_node`` (CPU, reliable input, its own namespace and domain-local discovery) and
publishes a 640x480 frame of four real faces (skimage's astronaut and matplotlib's Grace
Hopper, twice each) with its camera_info:

1. soak: ``--soak-hz`` for ``--soak-s`` seconds;
2. flood: ``--flood-hz`` for ``--flood-s`` seconds (more than the node can process: the
   latest frame wins, the rest is dropped or lost and counted).

Every ``--sample-s`` it records the node's RSS (from /proc) and the answers' latency (publish
to Face3DArray receipt). At the end it prints a table per phase: frames sent and answered,
faces per answer, latency median / p95 / max, RSS at start and end and its drift (the least-
squares slope times the phase length, after a one-minute warm-up when the phase is long
enough), and the node's own counters from /diagnostics. A program that prints figures, not a
test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import array
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def four_faces() -> np.ndarray:
    """(480, 640, 3) uint8: the astronaut and Grace Hopper, twice each, in a 2x2 grid."""
    import cv2
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = matplotlib.image.imread(f, format="jpeg")[..., :3]
    tiles = [cv2.resize(np.ascontiguousarray(im), (320, 240), interpolation=cv2.INTER_AREA)
             for im in (skimage.data.astronaut()[64:448], hopper[100:500])]
    top = np.concatenate((tiles[0], tiles[1]), axis=1)
    return np.ascontiguousarray(np.concatenate((top, top[:, ::-1]), axis=0))


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def drift_mb(samples, skip_s: float) -> float:
    """Least-squares RSS slope over the phase (after ``skip_s`` of warm-up when the phase
    is at least three times as long), times the measured span: MB of drift."""
    t = np.array([s[0] for s in samples])
    r = np.array([s[1] for s in samples])
    if len(t) > 4 and t[-1] - t[0] >= 3 * skip_s:
        keep = t - t[0] >= skip_s
        t, r = t[keep], r[keep]
    if len(t) < 2:
        return float("nan")
    slope = np.polyfit(t - t[0], r, 1)[0]
    return float(slope * (t[-1] - t[0]))


def main(argv=None) -> int:
    """Run the soak and the flood; print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--soak-s", type=float, default=600.0)
    p.add_argument("--soak-hz", type=float, default=30.0)
    p.add_argument("--flood-s", type=float, default=120.0)
    p.add_argument("--flood-hz", type=float, default=100.0)
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument("--log", type=Path, default=Path("/tmp/face3d_soak_node.log"))
    args = p.parse_args(argv)

    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from face3d_msgs.msg import Face3DArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from face3d_ros.tools.node_process import node_command, stop_node

    ns, cam = "/soak", "/soak_cam"
    cmd = node_command() + [
        "--ros-args", "--params-file", str(REPO / "config" / "face3d.yaml"),
        "-r", f"__ns:={ns}", "-r", f"image:={cam}/image_raw",
        "-r", f"camera_info:={cam}/camera_info", "-p", "device:=cpu",
        "-p", "input_reliability:=reliable", "-p", "no_image_warn_s:=30.0"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
    with open(args.log, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    rclpy.init()
    node = rclpy.create_node("face3d_soak")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, f"{cam}/image_raw", qos)
    info_pub = node.create_publisher(CameraInfo, f"{cam}/camera_info", qos)
    sent_t = {}
    answers = []  # (stamp key, latency s, faces)
    diag = {}

    def on_faces(msg):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in sent_t:
            answers.append((key, time.monotonic() - sent_t.pop(key), len(msg.faces)))

    def on_diag(msg):
        for s in msg.status:
            if s.name == f"{ns}/face3d: face3d":
                diag.update({kv.key: kv.value for kv in s.values})

    node.create_subscription(Face3DArray, f"{ns}/faces", on_faces, qos)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    rgb = four_faces()
    h, w = rgb.shape[:2]
    img = Image(width=w, height=h, encoding="rgb8", step=3 * w)
    img.header.frame_id = "soak_optical_frame"
    img.data = array.array("B", rgb.tobytes())
    info = CameraInfo(width=w, height=h, k=[0.9 * w, 0.0, w / 2, 0.0, 0.9 * w, h / 2, 0, 0, 1])
    seq = [0]

    def send():
        seq[0] += 1
        stamp = Time(sec=seq[0] // 1000 + 1, nanosec=(seq[0] % 1000) * 1_000_000)
        img.header.stamp = info.header.stamp = stamp
        info.header.frame_id = img.header.frame_id
        sent_t[(stamp.sec, stamp.nanosec)] = time.monotonic()
        info_pub.publish(info)
        image_pub.publish(img)

    def run(name, seconds, hz):
        answers.clear()
        sent_t.clear()
        before = dict(diag)
        samples = [(0.0, rss_mb(proc.pid))]
        t0 = time.monotonic()
        n = 0
        next_sample = args.sample_s
        while time.monotonic() - t0 < seconds and proc.poll() is None:
            due = t0 + n / hz
            while time.monotonic() < due:
                executor.spin_once(timeout_sec=max(0.0, min(0.002, due - time.monotonic())))
            send()
            n += 1
            if time.monotonic() - t0 >= next_sample:
                samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
                next_sample += args.sample_s
                for key in [k for k, t in sent_t.items() if time.monotonic() - t > 10.0]:
                    del sent_t[key]  # never answered (dropped or lost): forget it
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
        lat = np.array([a[1] for a in answers]) * 1e3
        faces = np.array([a[2] for a in answers])

        def delta(key):
            try:
                return int(diag.get(key, 0)) - int(before.get(key, 0))
            except ValueError:
                return float("nan")

        print(f"\n## {name}: {seconds:g} s at {hz:g} Hz (640x480, 4 faces)")
        print("| figure | value |\n|---|---|")
        print(f"| frames sent / answered | {n} / {len(answers)} "
              f"({100.0 * len(answers) / max(n, 1):.0f} %) |")
        print(f"| node: received / dropped (slot) / lost (input queue) | "
              f"{delta('frames_received')} / {delta('frames_dropped')} / "
              f"{delta('frames_lost')} |")
        if len(lat):
            print(f"| faces per answer (min-max) | {faces.min()}-{faces.max()} |")
            print(f"| latency median / p95 / max, ms | {np.median(lat):.0f} / "
                  f"{np.percentile(lat, 95):.0f} / {lat.max():.0f} |")
        print(f"| RSS start / end, MB | {samples[0][1]:.0f} / {samples[-1][1]:.0f} |")
        print(f"| RSS drift (fit after warm-up), MB | {drift_mb(samples, 60.0):+.1f} |")
        print(f"| RSS max, MB | {max(s[1] for s in samples):.0f} |")
        sys.stdout.flush()

    try:
        deadline = time.monotonic() + 120.0
        while (image_pub.get_subscription_count() == 0 or info_pub.get_subscription_count() == 0
               ) and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        if proc.poll() is not None or image_pub.get_subscription_count() == 0:
            print(f"face3d_node did not come up; see {args.log}", file=sys.stderr)
            return 1
        run("warm-up", 10.0, 10.0)
        if args.soak_s > 0:
            run("soak", args.soak_s, args.soak_hz)
        if args.flood_s > 0:
            run("flood", args.flood_s, args.flood_hz)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        code = stop_node(proc)
        print(f"\nnode exit status {code}; node log: {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
