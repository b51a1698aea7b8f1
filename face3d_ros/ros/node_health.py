"""What the perception node reports about itself and its input: the counters and timings shown
on ``/diagnostics``, the status it gives, and the words it logs when no image arrives or a
peer's QoS does not match.

Pure functions and plain data, no rclpy calls: the node (``ros/node.py``) gathers the graph
facts (publishers, their QoS) and passes them in, so every message is tested without a graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Hashable, Mapping, Optional, Sequence, Tuple

from diagnostic_msgs.msg import DiagnosticStatus


@dataclass
class FrameStats:
    """Counters and smoothed timings shown on /diagnostics (guarded by the node's lock)."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    bad: int = 0
    failed: int = 0
    lost: int = 0
    downscaled: int = 0
    faces_dropped: int = 0
    faces: int = 0
    ids: Tuple[int, ...] = ()
    latency_ms: Dict[str, float] = field(default_factory=dict)
    last_image_t: Optional[float] = None
    last_report_t: float = 0.0
    last_report_processed: int = 0
    rate_hz: float = 0.0
    #: Last publication sequence number per publisher (frames lost before the node took them).
    last_seq: Dict[Hashable, int] = field(default_factory=dict)

    def add_latency(self, stage: str, ms: float, alpha: float = 0.1) -> None:
        """Exponential moving average of a stage's milliseconds."""
        old = self.latency_ms.get(stage)
        self.latency_ms[stage] = ms if old is None else (1 - alpha) * old + alpha * ms

    def add_sequence(self, publisher: Hashable, seq: int) -> None:
        """Count the frames a publisher's sequence numbers skipped (overwritten in the depth-1
        input queue, or lost on the network) before this one."""
        last = self.last_seq.get(publisher)
        if last is not None and seq > last + 1:
            self.lost += seq - last - 1
        if last is None or seq > last:
            if len(self.last_seq) > 64:
                self.last_seq.clear()
            self.last_seq[publisher] = seq

    def report(self, now: float) -> Dict[str, object]:
        """The counters as diagnostic values (and the processing rate since the last report)."""
        dt = now - self.last_report_t
        if dt > 0:
            self.rate_hz = (self.processed - self.last_report_processed) / dt
        self.last_report_t, self.last_report_processed = now, self.processed
        values: Dict[str, object] = {
            "frames_received": self.received,
            "frames_processed": self.processed,
            "frames_dropped": self.dropped,
            "frames_lost": self.lost,
            "frames_downscaled": self.downscaled,
            "faces_dropped": self.faces_dropped,
            "bad_frames": self.bad,
            "failed_frames": self.failed,
            "rate_hz": f"{self.rate_hz:.2f}",
            "faces": self.faces,
            "face_ids": " ".join(str(i) for i in self.ids),
        }
        return values

    def latency_values(self) -> Dict[str, str]:
        """``latency_<stage>_ms`` diagnostic values, by stage name."""
        return {f"latency_{stage}_ms": f"{ms:.2f}"
                for stage, ms in sorted(self.latency_ms.items())}


def node_status(*, worker_error: Optional[str], running: bool, image_topic: str,
                since_image_s: Optional[float], no_image_warn_s: float,
                device_warning: Optional[str], intrinsics_source: str) -> Tuple[int, str]:
    """(DiagnosticStatus level, message) of the node: ERROR when processing stopped, WARN
    without images for ``no_image_warn_s`` or with a device warning, else OK."""
    if worker_error:
        return DiagnosticStatus.ERROR, f"processing stopped: {worker_error}"
    if not running:
        return DiagnosticStatus.OK, "inactive"
    if since_image_s is None or since_image_s > no_image_warn_s:
        return DiagnosticStatus.WARN, f"no image on {image_topic}"
    if device_warning:
        return DiagnosticStatus.WARN, device_warning
    if intrinsics_source.startswith("assumed"):
        return DiagnosticStatus.OK, "processing with assumed intrinsics"
    return DiagnosticStatus.OK, "processing"


def silence_reason(topic: str, best_effort_publishers: Optional[Sequence[bool]],
                   reliable_subscription: bool) -> str:
    """Why nothing may arrive on ``topic``. best_effort_publishers: per publisher on the topic,
    whether it offers best-effort reliability (empty: nobody publishes)."""
    pubs = list(best_effort_publishers or [])
    if not pubs:
        return (f"nobody publishes {topic}: remap 'image' to the camera's topic "
                f"(e.g. --ros-args -r image:=/camera/image_raw) or start the camera")
    best_effort = sum(pubs)
    if reliable_subscription and best_effort:
        return (f"{best_effort} of {len(pubs)} publisher(s) on {topic} are best "
                "effort, which this reliable subscription cannot receive: set "
                "input_reliability to 'best_effort'")
    return (f"{len(pubs)} publisher(s) on {topic} with compatible QoS, but no image "
            "arrived: the camera may have stopped streaming or its process died (DDS "
            "keeps listing a dead publisher until its lease expires); large frames over "
            "best effort can also be lost whole (see the README's troubleshooting)")


def incompatible_publisher_text(topic: str, policy: str, count: int) -> str:
    """The error for a publisher whose QoS this subscription cannot match."""
    hint = ("set input_reliability to 'best_effort'" if policy == "RELIABILITY"
            else "check the publisher's QoS")
    return (f"A publisher on {topic} has QoS incompatible with this subscription (policy "
            f"{policy}, {count} time(s)); no messages will arrive from it: {hint}")


def incompatible_subscriber_text(topic: str, policy: str, count: int) -> str:
    """The warning for a subscriber that requests QoS this node's publisher does not offer."""
    return (f"A subscriber of {topic} requests QoS this node does not offer (policy {policy}, "
            f"{count} time(s)); it receives nothing: {topic} is reliable, volatile, subscribe "
            "with that QoS")


def duplicate_name_text(same: int, fqn: str, domain: str) -> str:
    """The warning when ``same`` nodes on the graph share this node's name ``fqn``."""
    return (f"{same} nodes named {fqn} run on this ROS graph (ROS_DOMAIN_ID {domain}): their "
            "services, parameters and lifecycle calls collide; give each its own name or "
            "namespace (--ros-args -r __node:=NAME or -r __ns:=/NAMESPACE)")


def message_info_sequence(info: Mapping) -> Optional[Tuple[Hashable, int]]:
    """(publisher key, publication sequence number) of a subscription's message info, or None
    where the middleware gives none."""
    if not isinstance(info, Mapping):
        return None
    gid = info.get("publisher_gid")
    seq = info.get("publication_sequence_number")
    if gid is None or not seq or not 0 < seq < 2 ** 63:
        return None
    key = tuple(gid.get("data", ())) if isinstance(gid, dict) else (str(gid),)
    return key, int(seq)
