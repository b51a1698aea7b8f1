"""The face3d perception node: camera images in, faces, markers, gaze and diagnostics out.

Topics (relative, remap them; see docs/ros.md):

* in: ``image`` (sensor_msgs/Image) or ``image/compressed`` (``use_compressed``),
  ``camera_info``; best-effort QoS by default (``input_reliability``), depth 1 (camera_info
  depth 10).
* out (reliable): ``faces`` (face3d_msgs/Face3DArray), ``gaze`` (geometry_msgs/PoseArray),
  ``face_markers`` (visualization_msgs/MarkerArray, built only while subscribed),
  ``debug_image`` (sensor_msgs/Image, drawn only while subscribed), ``face_mesh_topology``
  (face3d_msgs/FaceMeshTopology, transient local: latched) and ``/diagnostics``; with ``hri``
  / ``publish_tf`` the ROS4HRI topics and TF frames (``ros/hri_bridge.py``).

Nothing here is about identities: ``Face3D.id`` is the track id. Who a face is (enrolled people,
re-identification, enrolment) is the people node's business (``ros/people_node.py``), which
subscribes to ``faces``.

Lifecycle: configure loads the models (FAILURE naming the fix when they are missing), activate
subscribes and starts the processing thread, deactivate stops both, cleanup frees the models.
With ``autostart`` (default) :func:`main` configures and activates at start.

Latest frame wins: the image callback only puts the message in a one-slot buffer (replacing,
and counting as dropped, a frame not yet taken); one processing thread takes it, runs the
tracker and publishes. Nothing queues up when processing is slower than the camera.

One module (over 400 lines): the lifecycle transitions, the input callbacks, the processing
thread and the publishing share the node's lock and state. What needs none of it lives beside
it: the camera_info policy and buffer (``ros/camera_info.py``), the input size step
(``ros/input_size.py``), the diagnostics counters and texts (``ros/node_health.py``), the
message fields (``core/io/face_fields.py``), markers, the ROS4HRI bridge, the parameter spec
and the process runner (``ros/node_runner.py``).
"""

from __future__ import annotations

import collections
import ctypes
import functools
import gc
import os
import sys
import threading
import time
import traceback
from typing import Dict, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from face3d_msgs.msg import Face3DArray, FaceMeshTopology
from geometry_msgs.msg import PoseArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from face3d_ros.core.pipeline.engine import FaceEngine
from face3d_ros.core.io.model_store import ModelHashError, ModelNotFoundError
from face3d_ros.core.io.overlay import draw_overlay
from face3d_ros.core.pipeline.topology import load_topology
from face3d_ros.core.pipeline.tracking import FaceTracker
from face3d_ros.core.types import CameraIntrinsics, FrameResult
from face3d_ros.ros import marker_cdr
from face3d_ros.ros.conversions import (
    ImageFormatError,
    compressed_msg_to_rgb,
    frame_to_msg,
    gaze_pose_array,
    image_msg_to_rgb,
    rgb_to_image_msg,
    topology_to_msg,
)
from face3d_ros.ros.camera_info import CameraInfoBuffer, camera_info_to_intrinsics
from face3d_ros.ros.input_size import header_seconds, to_original_pixels, track_frame
from face3d_ros.ros.hri_bridge import HriBridge
from face3d_ros.ros.markers import MarkerBuilder, MarkerOptions
from face3d_ros.ros.node_common import (REWARN_S, WarnOnce, camera_subscription,
                                        logged_transition)
from face3d_ros.ros.node_health import (FrameStats, duplicate_name_text,
                                        incompatible_publisher_text,
                                        incompatible_subscriber_text, message_info_sequence,
                                        node_status, silence_reason)
from face3d_ros.ros.param_spec import (PARAMETERS, Face3DConfig, ParameterStartupError,
                                       startup_problems)
from face3d_ros.ros.node_runner import run_node
from face3d_ros.ros.params import (SpecParameters, declare_parameters, read_configs,
                                   validate_update)

try:  # Iron and newer
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks


try:
    from rclpy.qos import qos_policy_name_from_kind
except ImportError:  # pragma: no cover - very old rclpy
    def qos_policy_name_from_kind(kind) -> str:  # type: ignore[misc]
        """The QoS policy kind as text."""
        return str(kind)


def _trim_heap() -> None:
    """Give the heap freed by cleanup (the models, the networks' buffers) back to the OS.

    glibc keeps freed memory in its arenas (one per thread that allocated; the networks run on
    several): a live node cycled through configure/cleanup grew ~10 MB per cycle in RSS
    without it although nothing stayed alive. No-op where glibc is not the C library.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


NODE_NAME = "face3d"
#: Processing stops (FATAL, diagnostics ERROR) after this many frames in a row fail unexpectedly.
MAX_CONSECUTIVE_FAILURES = 10
#: History depth of the camera_info subscription (the image subscription keeps depth 1).
CAMERA_INFO_DEPTH = 10
#: Seconds between checks for another node with this node's fully qualified name.
DUPLICATE_CHECK_S = 5.0
#: Whether this rclpy gives subscription callbacks the message info (publication sequence
#: numbers: frames lost before the node took them). Iron and newer.
_HAS_MESSAGE_INFO = hasattr(Subscription, "CallbackType")


class Face3DNode(SpecParameters, LifecycleNode):
    """Lifecycle node ``face3d`` (see the module docstring for topics and behaviour)."""

    def __init__(self, **kwargs) -> None:
        """Declare every parameter; nothing is loaded before configure.

        Raises :class:`ParameterStartupError` when a value given at start (params file or
        ``-p``) is out of range, of the wrong type or not one of the choices.
        """
        super().__init__(NODE_NAME, **kwargs)
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        problems = startup_problems({name: p.value for name, p in overrides.items()})
        if problems:
            self.destroy_node()
            raise ParameterStartupError(problems)
        declare_parameters(self)
        self._cfg: Face3DConfig = read_configs(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._engine: Optional[FaceEngine] = None
        self._tracker: Optional[FaceTracker] = None
        self._triangles = None
        self._markers: Optional[MarkerBuilder] = None
        self._markers_serialized = False
        self._pub: Dict[str, object] = {}
        #: ROS4HRI topics and TF frames (hri / publish_tf), while active.
        self._hri: Optional[HriBridge] = None
        self._subs: list = []
        self._diag_timer = None
        self._input_timer = None
        self._activated_t = 0.0
        self._image_topic = ""
        self._info_topic = ""
        # camera_info in a group of its own: a processing thread waiting for an image's info
        # must not wait behind the image callback, timers or services of the default group.
        self._info_group = MutuallyExclusiveCallbackGroup()
        #: Set by the shutdown transition: :func:`main` then stops spinning and exits.
        self.finished = threading.Event()

        self._lock = threading.Condition()
        self._slot: Optional[Tuple[object, float]] = None
        # Recent camera_info messages: the one with the image's stamp is used, else the newest.
        self._camera_infos = CameraInfoBuffer()
        self._image_stamps: collections.deque = collections.deque(maxlen=16)
        self._running = False
        self._worker: Optional[threading.Thread] = None
        self._worker_error: Optional[str] = None
        self._pending: Optional[Face3DConfig] = None
        self._stats = FrameStats()

        self._intr_key: Optional[tuple] = None
        self._intr: Tuple[Optional[CameraIntrinsics], Optional[str]] = (None, None)
        self._intr_source = "none yet"
        self._warn_once = WarnOnce(self.get_logger())
        self._silence_warned_t: Optional[float] = None
        self._duplicate_check_t = 0.0
        self._duplicate_warned = False

    # -- parameters ----------------------------------------------------------------------
    @property
    def autostart(self) -> bool:
        """Whether :func:`main` configures and activates the node at start."""
        return self._cfg.node.autostart

    def _on_set_parameters(self, params):
        current = {s.name: self.get_parameter(s.name).value for s in PARAMETERS}
        result, cfg = validate_update(current, params)
        if not result.successful:
            self.get_logger().warning(f"Rejected parameter change: {result.reason}")
            return result
        with self._lock:
            old = self._cfg
            self._cfg = cfg
            if cfg.engine != old.engine or cfg.tracker != old.tracker:
                self._pending = cfg  # applied by the processing thread between frames
        return result

    def _apply_pending(self) -> None:
        """Apply live engine/tracker parameter changes (processing thread, between frames)."""
        with self._lock:
            cfg, self._pending = self._pending, None
        if cfg is None or self._engine is None or self._tracker is None:
            return
        if cfg.engine != self._engine.config:
            # Thresholds only: read-only parameters (device, models, detector) never change
            # here, so the loaded networks are reused.
            self._engine = FaceEngine(cfg.engine, models=self._engine.models)
            self._tracker.engine = self._engine
        if cfg.tracker != self._tracker.config:
            self._tracker.config = cfg.tracker
        self.get_logger().info("Applied new engine/tracker parameters")

    # -- lifecycle -----------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the models and create the publishers."""
        cfg = self._cfg
        log = self.get_logger()
        try:
            self._engine = FaceEngine(cfg.engine)
            topology = load_topology(cfg.engine.model_dir)
        except (ModelNotFoundError, ModelHashError) as exc:
            log.error(f"Cannot configure: {exc}")
            self._engine = None
            return TransitionCallbackReturn.FAILURE
        if self._engine.device_warning:
            log.warning(self._engine.device_warning)
        self._tracker = FaceTracker(self._engine, cfg.tracker)
        self._triangles = topology.triangles
        self._markers = MarkerBuilder(self._marker_options(), self._triangles)
        ok, why = marker_cdr.self_check()
        self._markers_serialized = ok
        if not ok:
            log.warning(f"Markers are published as plain messages (slower): {why}")

        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)

        def events(topic: str) -> PublisherEventCallbacks:
            return PublisherEventCallbacks(incompatible_qos=functools.partial(
                self._on_pub_incompatible_qos, topic))

        self._pub = {
            "faces": self.create_publisher(Face3DArray, "faces", reliable,
                                           event_callbacks=events("faces")),
            "gaze": self.create_publisher(PoseArray, "gaze", reliable,
                                          event_callbacks=events("gaze")),
            "markers": self.create_publisher(MarkerArray, "face_markers", reliable,
                                             event_callbacks=events("face_markers")),
            "debug": self.create_publisher(Image, "debug_image", QoSProfile(depth=2),
                                           event_callbacks=events("debug_image")),
            "topology": self.create_publisher(FaceMeshTopology, "face_mesh_topology", latched),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        self._pub["topology"].publish(topology_to_msg(topology.triangles, topology.uv))
        self._stats = FrameStats(last_report_t=time.monotonic())
        self._diag_timer = self.create_timer(cfg.node.diagnostics_period_s,
                                             self._publish_diagnostics)
        # The loaded models are millions of long-lived objects; moving them out of the
        # collector's view keeps its full collections (triggered by the many small message
        # objects of every frame) from costing milliseconds per frame. Cleanup unfreezes them
        # (frozen objects are never collected: each cycle leaked its models).
        gc.collect()
        gc.freeze()
        log.info(f"Configured: models loaded on {self._engine.device}, detector "
                 f"{cfg.engine.detector}, {len(topology.triangles)} mesh triangles")
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the camera and start the processing thread."""
        cfg = self._cfg.node
        topic, msg_type, qos = camera_subscription(
            self, cfg.use_compressed, cfg.input_reliability, depth=1)
        on_image = self._on_image_with_info if _HAS_MESSAGE_INFO else self._on_image
        image_sub = self.create_subscription(
            msg_type, topic, on_image, qos,
            event_callbacks=SubscriptionEventCallbacks(
                incompatible_qos=lambda info: self._on_sub_incompatible_qos("image", info)))
        info_events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._on_sub_incompatible_qos("camera_info", info))
        # camera_info keeps a short history: several infos that arrive before the callback is
        # taken (a burst after a reliable re-send, an info rate above the image rate) are all
        # kept, so that each image still finds the info with its stamp. Infos are small.
        info_qos = QoSProfile(depth=CAMERA_INFO_DEPTH, history=qos.history,
                              reliability=qos.reliability, durability=qos.durability)
        info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                            info_qos, event_callbacks=info_events,
                                            callback_group=self._info_group)
        self._subs = [image_sub, info_sub]
        self._image_topic = getattr(image_sub, "topic_name", topic)
        self._info_topic = getattr(info_sub, "topic_name", self._resolved("camera_info"))
        with self._lock:
            self._running = True
            self._slot = None
            self._worker_error = None
            self._stats.last_image_t = None
            self._stats.last_seq.clear()
        self._silence_warned_t = None
        self._activated_t = time.monotonic()
        if cfg.hri or cfg.publish_tf:
            self._hri = HriBridge(self, cfg.hri, cfg.publish_tf)
            if self._hri.active:
                self.get_logger().info(f"ROS4HRI: topics {self._hri.mode['hri']}, TF "
                                       f"{self._hri.mode['tf']}")
        self._worker = threading.Thread(target=self._run, name="face3d_processing", daemon=True)
        self._worker.start()
        self._input_timer = self.create_timer(1.0, self._check_input)
        self.get_logger().info(
            f"Active: listening on {self._image_topic} ({msg_type.__name__}, "
            f"{cfg.input_reliability}) and {self._info_topic}")
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Stop the processing thread and unsubscribe."""
        self._stop_processing()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._input_timer is not None:
            self.destroy_timer(self._input_timer)
            self._input_timer = None
        if self._markers is not None and "markers" in self._pub:
            self._pub["markers"].publish(self._markers.clear(self._last_header()))
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the models and destroy the publishers."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop everything from any state; :func:`main` then ends the process."""
        self._stop_processing()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._release()
        self.finished.set()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_error(self, state: State) -> TransitionCallbackReturn:
        """After a failed transition: stop and free everything (back to unconfigured)."""
        self._stop_processing()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for timer in (self._diag_timer, self._input_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._diag_timer = self._input_timer = None
        for pub in self._pub.values():
            self.destroy_publisher(pub)
        self._pub = {}
        device = self._engine.device if self._engine is not None else None
        self._tracker = None
        self._engine = None
        self._markers = None
        self._intr_key, self._intr = None, (None, None)
        # Configure froze the models out of the collector's view; without this they (and
        # every object they reach) would stay for good, ~13 MB per configure/cleanup cycle.
        gc.unfreeze()
        gc.collect()
        _trim_heap()
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _stop_processing(self) -> None:
        with self._lock:
            self._running = False
            self._slot = None
            self._lock.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None
        if self._hri is not None:  # after the processing thread: nothing publishes any more
            self._hri.close()
            self._hri = None

    def shutdown_processing(self) -> None:
        """Stop the processing thread (before the node is destroyed, while the context is
        still valid: nothing publishes into a dead one)."""
        self._stop_processing()

    # -- input ---------------------------------------------------------------------------
    def _on_image_with_info(self, msg, info) -> None:
        """Image callback with the message info: a gap in a publisher's sequence numbers is
        frames lost before the node took them (overwritten in the depth-1 input queue, or
        lost on the network)."""
        seq = message_info_sequence(info)
        if seq is not None:
            with self._lock:
                self._stats.add_sequence(*seq)
        self._on_image(msg)

    def _on_image(self, msg) -> None:
        with self._lock:
            self._image_stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            self._stats.received += 1
            self._stats.last_image_t = time.monotonic()
            if self._slot is not None:
                self._stats.dropped += 1
            self._slot = (msg, time.perf_counter())
            self._lock.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._camera_infos.add(msg, self._image_stamps)
            self._lock.notify_all()

    def _on_sub_incompatible_qos(self, topic: str, info) -> None:
        self.get_logger().error(incompatible_publisher_text(
            self._resolved(topic), qos_policy_name_from_kind(info.last_policy_kind),
            info.total_count))

    def _on_pub_incompatible_qos(self, topic: str, info) -> None:
        self.get_logger().warning(incompatible_subscriber_text(
            self._resolved(topic), qos_policy_name_from_kind(info.last_policy_kind),
            info.total_count))

    def _resolved(self, topic: str) -> str:
        resolve = getattr(self, "resolve_topic_name", None)
        return resolve(topic) if resolve else topic

    def _check_input(self) -> None:
        """Warn when no image arrived for ``no_image_warn_s``, saying why that may be."""
        now = time.monotonic()
        with self._lock:
            last = self._stats.last_image_t
        since = now - (last if last is not None else self._activated_t)
        if since < self._cfg.node.no_image_warn_s:
            self._silence_warned_t = None
            return
        if self._silence_warned_t is not None and now - self._silence_warned_t < REWARN_S:
            return
        self._silence_warned_t = now
        self.get_logger().warning(f"No image received for {since:.1f} s; "
                                  f"{self._silence_reason(self._image_topic)}")

    def _silence_reason(self, topic: str) -> str:
        """Why nothing may arrive on ``topic``, judged from the publishers' offered QoS."""
        try:
            pubs = self.get_publishers_info_by_topic(topic)
        except (AttributeError, RuntimeError):  # pragma: no cover - very old rclpy
            pubs = []
        return silence_reason(
            topic, [p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in pubs],
            self._cfg.node.input_reliability == "reliable")

    # -- processing ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # noqa: B902 - the loop gave up (see _loop): report, end thread
            self._worker_error = repr(exc)
            self.get_logger().fatal(
                f"Processing stopped by {exc!r} after {MAX_CONSECUTIVE_FAILURES} failed frames "
                "in a row; fix the cause, then deactivate and activate the node (or restart it)")

    def _loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                while self._running and self._slot is None:
                    self._lock.wait(0.5)
                if not self._running:
                    return
                msg, t_recv = self._slot
                self._slot = None
            if self._pending is not None:
                self._apply_pending()
            # Bad input is handled inside _process. This catches what is left, a defect, so that
            # one unlucky frame does not blind the robot: it is logged with its traceback, the
            # tracks are reset, and processing stops only if it keeps happening.
            try:
                self._process(msg, t_recv)
                failures = 0
            except Exception as exc:  # noqa: B902 - the supervisor of the processing thread
                failures += 1
                with self._lock:
                    self._stats.failed += 1
                self._warn_once("defect:" + type(exc).__name__,
                                f"Processing a frame failed unexpectedly ({exc!r}); tracks reset, "
                                f"going on with the next frame:\n{traceback.format_exc()}",
                                error=True)
                if self._tracker is not None:
                    self._tracker.reset()
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise

    def _camera_info_for(self, header, width: int, height: int) -> Optional[CameraInfo]:
        """The camera_info of an image by the one policy of ``ros.camera_info`` (the one with
        the image's stamp, else the newest of the image's size, else the newest), waiting
        briefly for the image's own where the camera stamps its infos
        (:class:`CameraInfoBuffer`)."""
        stamp = (header.stamp.sec, header.stamp.nanosec)
        wait = self._camera_infos.should_wait(
            lambda: self.count_publishers(self._info_topic))
        with self._lock:
            return self._camera_infos.take(self._lock, stamp, width, height, wait,
                                           lambda: self._running)

    def _intrinsics(self, width: int, height: int, header) -> Optional[CameraIntrinsics]:
        cfg = self._cfg
        if not cfg.node.use_camera_info:
            self._intr_source = "assumed (use_camera_info is false)"
            return None
        info = self._camera_info_for(header, width, height)
        # The content, not id(info): a freed message's id is reused by the next one.
        key = (None if info is None else
               (info.header.stamp.sec, info.header.stamp.nanosec, tuple(info.k), info.width,
                info.height), width, height, cfg.engine.default_hfov_deg)
        if key != self._intr_key:
            self._intr_key = key
            self._intr = camera_info_to_intrinsics(info, width, height,
                                                   cfg.engine.default_hfov_deg)
        intr, problem = self._intr
        if problem is None:
            self._intr_source = "camera_info"
        else:
            self._intr_source = f"assumed: {problem}"
            # A camera_info that is there but wrong is an error to fix; none (yet) a warning.
            self._warn_once(
                "intrinsics:" + problem,
                f"Using assumed intrinsics (horizontal field of view "
                f"{cfg.engine.default_hfov_deg:g} deg) for {self._image_topic}: {problem} on "
                f"{self._info_topic or self._resolved('camera_info')}; metric positions and "
                "distances are approximate until a valid camera_info arrives "
                "(intrinsics_assumed is true)", error=info is not None)
        return intr

    def _process(self, msg, t_recv: float) -> None:
        tracker = self._tracker
        if tracker is None:
            return
        timings: Dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_msg_to_rgb(msg)
            else:
                rgb = image_msg_to_rgb(msg)
        except ImageFormatError as exc:
            with self._lock:
                self._stats.bad += 1
            # One log per kind of problem and encoding: a second, different bad encoding (e.g.
            # the depth image after a bayer one) is logged too, with its own hint.
            kind = getattr(msg, "encoding", None) or getattr(msg, "format", "")
            self._warn_once(f"bad_frame:{exc.cause}:{kind}",
                            f"Dropped a bad image from {self._image_topic}: {exc}", error=True)
            return
        t1 = time.perf_counter()
        timings["decode"] = (t1 - t0) * 1e3
        height, width = rgb.shape[:2]
        intr = self._intrinsics(width, height, msg.header)
        stamp = header_seconds(msg.header) or time.monotonic()
        # Input size policy (ros.input_size): a frame larger than max_image_side is processed
        # downscaled (its results mapped back to its own pixels), so memory and time stay
        # bounded.
        try:
            tracked = track_frame(tracker, rgb, intr, stamp, self._cfg.node.max_image_side)
        except (RuntimeError, ValueError) as exc:
            with self._lock:
                self._stats.failed += 1
            self._warn_once("engine:" + type(exc).__name__,
                            f"Processing an image from {self._image_topic} failed: {exc}",
                            error=True)
            return
        result = tracked.result
        if tracked.small is not None:
            small = tracked.small[0]
            timings["downscale"] = tracked.downscale_ms
            with self._lock:
                self._stats.downscaled += 1
            self._warn_once(
                "downscale:%dx%d" % (width, height),
                f"Images from {self._image_topic} are {width}x{height}, larger than "
                f"max_image_side {self._cfg.node.max_image_side} px: processing them at "
                f"{small.shape[1]}x{small.shape[0]} (results in the original pixels); raise "
                "max_image_side to process them at full size")
        t2 = time.perf_counter()
        if result.faces_dropped:  # once per stream (frame size): the tracker's streams
            self._warn_once(f"max_faces:{width}x{height}", f"{result.faces_dropped} faces "
                            f"beyond max_faces were not processed; raise max_faces")
        for stage, ms in result.timings_ms.items():
            timings["engine_" + stage] = ms
        self._publish(result, msg.header, rgb, timings, small=tracked.small)
        if self._hri is not None:
            t_hri = time.perf_counter()
            self._hri.publish(result, msg.header, rgb)
            timings["hri"] = (time.perf_counter() - t_hri) * 1e3
        t_end = time.perf_counter()
        timings["total"] = (t_end - t_recv) * 1e3
        timings["node_overhead"] = (t_end - t0) * 1e3 - (t2 - t1) * 1e3
        with self._lock:
            st = self._stats
            st.processed += 1
            st.faces = len(result.faces)
            st.faces_dropped += result.faces_dropped
            st.ids = tuple(f.track_id for f in result.faces)
            for stage, ms in timings.items():
                st.add_latency(stage, ms)

    def _publish(self, result: FrameResult, header, rgb, timings: Dict[str, float],
                 small=None) -> None:
        """Publish one frame's outputs. small: (image, intrinsics, sx, sy) of a downscaled
        frame; the debug overlay is then drawn at that size."""
        cfg = self._cfg.node
        pubs = self._pub
        t0 = time.perf_counter()
        pubs["faces"].publish(frame_to_msg(result, header))
        if cfg.publish_gaze:
            pubs["gaze"].publish(gaze_pose_array(result, header))
        t1 = time.perf_counter()
        timings["messages"] = (t1 - t0) * 1e3
        self._header = header
        if cfg.publish_markers and pubs["markers"].get_subscription_count() > 0:
            self._markers.options = self._marker_options()
            self._publish_markers(result, header)
            t2 = time.perf_counter()
            timings["markers"] = (t2 - t1) * 1e3
            t1 = t2
        if cfg.publish_debug_image and pubs["debug"].get_subscription_count() > 0:
            if small is not None:
                image, intr, sx, sy = small
                shown = to_original_pixels(result, 1.0 / sx, 1.0 / sy, intr,
                                           (image.shape[1], image.shape[0]))
                overlay = draw_overlay(image, shown, self._triangles)
            else:
                overlay = draw_overlay(rgb, result, self._triangles)
            pubs["debug"].publish(rgb_to_image_msg(overlay, header))
            timings["debug_image"] = (time.perf_counter() - t1) * 1e3

    def _publish_markers(self, result: FrameResult, header) -> None:
        """The MarkerArray serialized from numpy (see ros/marker_cdr.py), or as a message
        where this ROS installation failed the self-check or cannot publish bytes. The
        markers are the builder's own, refilled each frame: published before the next."""
        parts = self._markers.parts(result, header, reuse=True)
        if self._markers_serialized:
            try:
                self._pub["markers"].publish(marker_cdr.encode_marker_array(parts))
                return
            except (TypeError, RuntimeError) as exc:
                # An rclpy without Publisher.publish(bytes), or a marker layout the encoder
                # does not expect: plain messages from now on.
                self._markers_serialized = False
                self.get_logger().warning(
                    f"Markers are published as plain messages (slower): {exc}")
        self._pub["markers"].publish(marker_cdr.to_marker_array(parts))

    def _marker_options(self) -> MarkerOptions:
        return MarkerOptions(lifetime_s=self._cfg.node.marker_lifetime_s)

    def _last_header(self):
        from std_msgs.msg import Header

        return getattr(self, "_header", None) or Header()

    # -- diagnostics ---------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        pub = self._pub.get("diagnostics")
        if pub is None:
            return
        now = time.monotonic()
        bridge = self._hri  # read once: deactivate may drop it meanwhile
        hri_mode = bridge.mode if bridge is not None else {"hri": "off", "tf": "off"}
        with self._lock:
            st = self._stats
            values = st.report(now)
            values.update({
                "device": str(self._engine.device) if self._engine is not None else "none",
                "intrinsics_source": self._intr_source,
                "ros4hri": hri_mode["hri"],
                "tf": hri_mode["tf"],
                "input_topic": self._image_topic,
                "seconds_since_last_image": ("never" if st.last_image_t is None
                                             else f"{now - st.last_image_t:.2f}"),
            })
            values.update(st.latency_values())
            last_image_t = st.last_image_t
        values["input_publishers"] = (self.count_publishers(self._image_topic)
                                      if self._image_topic else 0)
        level, message = node_status(
            worker_error=self._worker_error, running=self._running,
            image_topic=self._image_topic,
            since_image_s=None if last_image_t is None else now - last_image_t,
            no_image_warn_s=self._cfg.node.no_image_warn_s,
            device_warning=self._engine.device_warning if self._engine is not None else None,
            intrinsics_source=self._intr_source)
        self._check_duplicate_name(now)
        status = DiagnosticStatus(
            level=level, name=f"{self._fqn()}: face3d", message=message,
            hardware_id=values["device"],
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        pub.publish(arr)

    def _fqn(self) -> str:
        """The node's namespace and name, e.g. ``/robot/face3d`` (two cameras, two names)."""
        fqn = getattr(self, "get_fully_qualified_name", None)
        if fqn is not None:
            return fqn()
        ns = self.get_namespace().rstrip("/")
        return f"{ns}/{self.get_name()}"

    def _check_duplicate_name(self, now: float) -> None:
        """Warn (once per appearance) when another node on the graph has this node's fully
        qualified name: their parameter and lifecycle services collide."""
        if now - self._duplicate_check_t < DUPLICATE_CHECK_S:
            return
        self._duplicate_check_t = now
        me = (self.get_name(), self.get_namespace())
        same = sum(1 for n in self.get_node_names_and_namespaces() if tuple(n) == me)
        if same > 1 and not self._duplicate_warned:
            self._duplicate_warned = True
            self.get_logger().warning(duplicate_name_text(
                same, self._fqn(), os.environ.get("ROS_DOMAIN_ID", "0")))
        elif same <= 1:
            self._duplicate_warned = False


def main(args=None) -> int:
    """Run the node; with ``autostart`` it configures and activates itself. Exit status and
    signals: ``ros/node_runner.py``."""
    # Three threads: camera_info has its own callback group (the processing thread may wait
    # for an image's info) beside images, timers and services.
    return run_node(Face3DNode, NODE_NAME, PARAMETERS, threads=3, args=args)


if __name__ == "__main__":
    sys.exit(main())
