"""face3d-demo: real photos through the real node over DDS, results written to a folder.

Starts the installed ``face3d_node`` as a subprocess (exactly as a user would, with the params
file and remaps), publishes a short stream of photos shipped in registry packages with their
camera_info: the astronaut (one face), Grace Hopper (one face), both side by side (two faces)
and Chelsea the cat (no human face), a few frames each. It subscribes to the node's outputs
and writes under ``--out`` (default ``out/demo``):

* ``overlay_NNN_<image>.png``: the node's ``debug_image`` of every frame;
* ``faces.jsonl``: one line per ``Face3DArray``: stamp, ids, pose angles, position, gaze,
  expressions;
* ``<image>_face<id>.obj`` (+ .mtl, .png): the textured mesh of every face of each image's
  last frame;
* ``node.log``: the node's log.

It prints a summary table and exits non-zero with the reason when the node produced nothing.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

from face3d_ros.tools.node_process import node_command, stop_node

CAMERA_NS = "/demo_cam"
FRAME_ID = "camera_optical_frame"


def demo_images() -> List[Tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8 RGB) of the demo photos, from skimage and matplotlib."""
    import matplotlib.cbook
    import matplotlib.image
    import skimage.data

    astronaut = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.ascontiguousarray(matplotlib.image.imread(f, format="jpeg")[..., :3])
    h = astronaut.shape[0]
    hopper_scaled = cv2.resize(hopper, (round(hopper.shape[1] * h / hopper.shape[0]), h),
                               interpolation=cv2.INTER_AREA)
    pair = np.ascontiguousarray(np.concatenate([astronaut, hopper_scaled], axis=1))
    cat = np.ascontiguousarray(skimage.data.chelsea()[..., :3])
    return [("astronaut", astronaut), ("grace_hopper", hopper), ("two_faces", pair),
            ("chelsea_cat", cat)]


def find_params_file() -> Path:
    """config/face3d.yaml of this checkout, else the installed one."""
    local = Path.cwd() / "config" / "face3d.yaml"
    if local.is_file():
        return local
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("face3d_ros")) / "config" / "face3d.yaml"


class _Client:
    """Publishers of images/camera_info and subscribers of the node's outputs."""

    def __init__(self, context) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from face3d_msgs.msg import Face3DArray, FaceMeshTopology
        from geometry_msgs.msg import PoseArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from visualization_msgs.msg import MarkerArray

        self.Image, self.CameraInfo = Image, CameraInfo
        self.node = rclpy.create_node("face3d_demo", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.image_pub = self.node.create_publisher(Image, f"{CAMERA_NS}/image_raw", reliable)
        self.info_pub = self.node.create_publisher(CameraInfo, f"{CAMERA_NS}/camera_info",
                                                   reliable)
        self.faces: Dict[tuple, object] = {}
        self.gaze: Dict[tuple, object] = {}
        self.debug: Dict[tuple, object] = {}
        self.markers = 0
        self.diagnostics: list = []
        self.topology: list = []
        sub = self.node.create_subscription
        sub(Face3DArray, "/faces", lambda m: self.faces.__setitem__(_key(m.header), m),
            reliable)
        sub(PoseArray, "/gaze", lambda m: self.gaze.__setitem__(_key(m.header), m), reliable)
        sub(Image, "/debug_image", lambda m: self.debug.__setitem__(_key(m.header), m),
            reliable)
        sub(MarkerArray, "/face_markers", self._count_markers, reliable)
        sub(DiagnosticArray, "/diagnostics", self.diagnostics.append, reliable)
        sub(FaceMeshTopology, "/face_mesh_topology", self.topology.append, latched)

    def _count_markers(self, msg) -> None:
        self.markers += len(msg.markers)

    def spin_until(self, done, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return bool(done())

    def send(self, rgb: np.ndarray, sec: int) -> tuple:
        """Publish one frame and its camera_info (60 deg horizontal field of view)."""
        from builtin_interfaces.msg import Time

        h, w = rgb.shape[:2]
        f = 0.5 * w / np.tan(np.radians(30.0))
        img = self.Image(width=w, height=h, encoding="rgb8", step=3 * w)
        img.header.stamp = Time(sec=sec, nanosec=0)
        img.header.frame_id = FRAME_ID
        img.data = array.array("B", rgb.tobytes())
        info = self.CameraInfo(width=w, height=h, distortion_model="plumb_bob",
                               d=[0.0] * 5, k=[f, 0.0, w / 2.0, 0.0, f, h / 2.0, 0.0, 0.0, 1.0])
        info.header = img.header
        self.info_pub.publish(info)
        self.image_pub.publish(img)
        return (sec, 0)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _key(header) -> tuple:
    return (header.stamp.sec, header.stamp.nanosec)


def _face_record(face) -> dict:
    g = face.gaze_combined
    p = face.head_pose.pose.position
    return {
        "id": face.id, "confidence": round(face.confidence, 4),
        "box_px": [round(v, 1) for v in (face.x_min, face.y_min, face.x_max, face.y_max)],
        "position_m": [round(p.x, 4), round(p.y, 4), round(p.z, 4)],
        "yaw_deg": round(face.head_yaw, 2), "pitch_deg": round(face.head_pitch, 2),
        "roll_deg": round(face.head_roll, 2),
        "gaze": {"origin_m": [round(g.origin.x, 4), round(g.origin.y, 4), round(g.origin.z, 4)],
                 "direction": [round(g.direction.x, 4), round(g.direction.y, 4),
                               round(g.direction.z, 4)],
                 "yaw_deg": round(g.yaw, 2), "pitch_deg": round(g.pitch, 2),
                 "confidence": round(g.confidence, 3)},
        "expressions": {n: round(float(v), 3) for n, v in zip(face.expression_names,
                                                              face.expression_values)},
    }


def run(out: Path, frames: int, device: str, timeout_s: float) -> int:
    """The demo; returns the exit code."""
    import rclpy

    from face3d_ros.ros.conversions import face_from_msg, image_msg_to_rgb

    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("overlay_*.png")) + list(out.glob("*.obj")):
        old.unlink()
    images = demo_images()
    try:
        node = node_command()
    except FileNotFoundError as exc:
        print(f"face3d-demo: {exc}", file=sys.stderr)
        return 2
    cmd = node + [
        "--ros-args", "--params-file", str(find_params_file()),
        "-r", f"image:={CAMERA_NS}/image_raw", "-r", f"camera_info:={CAMERA_NS}/camera_info",
        "-p", f"device:={device}",
        # Frames of several hundred kB on one host: reliable delivery (docs/ros.md).
        "-p", "input_reliability:=reliable",
    ]
    log_path = out / "node.log"
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    print(f"face3d-demo: started {' '.join(cmd[:1])} (log: {log_path})")
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    client = _Client(ctx)
    rows = []
    try:
        up = client.spin_until(lambda: proc.poll() is not None or (
            client.topology and client.image_pub.get_subscription_count() > 0), timeout_s)
        if proc.poll() is not None or not up:
            tail = log_path.read_text(errors="replace")[-2000:]
            print(f"face3d-demo: the node did not come up (exit code {proc.poll()}):\n{tail}",
                  file=sys.stderr)
            return 1
        triangles = np.frombuffer(client.topology[0].triangles, np.uint32).reshape(-1, 3)
        sec = 1000
        with open(out / "faces.jsonl", "w") as jsonl:
            for name, rgb in images:
                last = None
                for _ in range(frames):
                    sec += 1
                    t0 = time.perf_counter()
                    key = client.send(rgb, sec)
                    if not client.spin_until(lambda: key in client.faces, 30.0):
                        print(f"face3d-demo: no answer for a frame of {name}", file=sys.stderr)
                        continue
                    latency = (time.perf_counter() - t0) * 1e3
                    client.spin_until(lambda: key in client.debug and key in client.gaze, 5.0)
                    msg = client.faces[key]
                    last = msg
                    index = len(rows)
                    if key in client.debug:
                        overlay = image_msg_to_rgb(client.debug[key])
                        cv2.imwrite(str(out / f"overlay_{index:03d}_{name}.png"),
                                    cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
                    record = {"frame": index, "image": name,
                              "stamp": {"sec": key[0], "nanosec": key[1]},
                              "frame_id": msg.header.frame_id,
                              "intrinsics_assumed": msg.intrinsics_assumed,
                              "latency_ms": round(latency, 1),
                              "faces": [_face_record(f) for f in msg.faces]}
                    jsonl.write(json.dumps(record) + "\n")
                    rows.append((index, name, msg, latency))
                if last is not None:
                    _write_objs(out, name, last, rgb, triangles, face_from_msg)
    finally:
        client.close()
        ctx.try_shutdown()
        code = stop_node(proc)
    _print_summary(rows)
    if not rows:
        print(f"face3d-demo: the node produced no results; see {log_path}", file=sys.stderr)
        return 1
    print(f"face3d-demo: node exit code {code}; {client.markers} markers, "
          f"{len(client.diagnostics)} diagnostics messages received; outputs in {out}")
    return 0


def _write_objs(out: Path, name: str, msg, rgb: np.ndarray, triangles: np.ndarray,
                face_from_msg) -> None:
    try:
        from face3d_ros.core.people.export import write_textured_obj
    except ImportError:
        return
    for face in msg.faces:
        write_textured_obj(out, f"{name}_face{face.id}", face_from_msg(face), rgb, triangles)


def _print_summary(rows) -> None:
    header = (f"{'frame':>5} {'image':<13} {'faces':>5} {'ids':<8} {'yaw':>7} {'pitch':>7} "
              f"{'roll':>7} {'gz_yaw':>7} {'gz_pit':>7} {'z_m':>6} {'ms':>7}")
    print(header)
    print("-" * len(header))
    for index, name, msg, latency in rows:
        ids = ",".join(str(f.id) for f in msg.faces) or "-"
        if msg.faces:
            f = msg.faces[0]
            angles = (f"{f.head_yaw:7.1f} {f.head_pitch:7.1f} {f.head_roll:7.1f} "
                      f"{f.gaze_combined.yaw:7.1f} {f.gaze_combined.pitch:7.1f} "
                      f"{f.head_pose.pose.position.z:6.2f}")
        else:
            angles = " ".join(f"{'-':>7}" for _ in range(5)) + f" {'-':>6}"
        print(f"{index:>5} {name:<13} {len(msg.faces):>5} {ids:<8} {angles} {latency:7.1f}")
    print("(angles in degrees of the first face; z: its distance along the optical axis)")


def main(argv=None) -> int:
    """Command line entry point (``face3d-demo``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="output folder (default: out/demo)")
    parser.add_argument("--frames", type=int, default=4, help="frames per photo (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for the node to come up (default 120)")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error("--frames must be >= 1")
    return run(args.out, args.frames, args.device, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
