"""Lifecycle cycling does not leak: 50 configure -> activate -> (2 frames of a real photo) ->
deactivate -> cleanup cycles of a real node (real models, real rclpy publishers, subscriptions
and timers) in a process of its own, RSS measured after warm-up and at the end (point 2 of the
robustness issue: ~13 MB per cycle reported, attributed to gc.freeze() at configure without
gc.unfreeze())."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CYCLES = 50
WARMUP = 3

SCRIPT = textwrap.dedent("""
    import ctypes, gc, json, sys, time
    import rclpy
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter
    from face3d_ros.ros.node import Face3DNode

    def rss_mb():
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory back to the OS: only live
        with open("/proc/self/statm") as f:      # objects are left to count
            return int(f.read().split()[1]) * 4096 / 2**20

    warmup, cycles, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = Face3DNode(context=ctx, parameter_overrides=[
        Parameter("device", value="cpu"), Parameter("enrollment_dir", value=folder)])
    import array, skimage.data
    from sensor_msgs.msg import Image
    rgb = skimage.data.astronaut()
    frame = Image(width=512, height=512, encoding="rgb8", step=3 * 512)
    frame.data = array.array("B", rgb.tobytes())

    def cycle():
        assert node.trigger_configure() == R.SUCCESS
        assert node.trigger_activate() == R.SUCCESS
        for i in range(2):  # frames through the processing thread, as from the camera
            done = node._stats.processed + 1
            frame.header.stamp.sec = i + 1
            node._on_image(frame)
            deadline = time.monotonic() + 30.0
            while node._stats.processed < done and time.monotonic() < deadline:
                time.sleep(0.01)
        assert node.trigger_deactivate() == R.SUCCESS
        assert node.trigger_cleanup() == R.SUCCESS
    for _ in range(warmup):
        cycle()
    start, t0 = rss_mb(), time.monotonic()
    for _ in range(cycles):
        cycle()
    end = rss_mb()
    print(json.dumps({"start_mb": start, "end_mb": end, "seconds": time.monotonic() - t0}))
    node.destroy_node()
    ctx.try_shutdown()
""")


def test_fifty_lifecycle_cycles_do_not_grow_memory(tmp_path):
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(WARMUP), str(CYCLES),
                          str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    per_cycle = (result["end_mb"] - result["start_mb"]) / CYCLES
    print(f"\nRSS {result['start_mb']:.1f} -> {result['end_mb']:.1f} MB over {CYCLES} cycles "
          f"({per_cycle:+.2f} MB/cycle, {result['seconds']:.0f} s; {time.monotonic() - t0:.0f} s "
          "with start-up)")
    assert per_cycle <= 1.0, f"{per_cycle:.2f} MB per cycle"
