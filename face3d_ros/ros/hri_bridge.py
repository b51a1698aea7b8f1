"""The ROS4HRI (REP-155) and TF outputs of the node, from the same FrameResult as ``faces``.

Optional packages, imported guarded: ``hri_msgs`` (REP-155 topics), ``tf2_ros`` (TF through
its TransformBroadcaster) or else ``tf2_msgs`` (TFMessage on ``/tf`` with plain rclpy, with
the QoS of tf2_ros' broadcaster). What is missing is reported once, in one line, by
:func:`availability`; the node keeps publishing its own outputs.

Topics (absolute, as REP-155 names them; push the node into a namespace to move them):
``/humans/faces/tracked`` (hri_msgs/IdsList, every processed frame, empty when nobody is
there) and per confirmed face ``/humans/faces/<id>/roi``, ``landmarks``, ``expression``,
``facs``, ``cropped`` and ``aligned`` (the two images only while subscribed). A face's
publishers are created when its track is confirmed and destroyed when the track is lost.
The content rules live in :mod:`face3d_ros.ros.hri`.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Optional, Tuple

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from face3d_ros.core.types import FaceResult, FrameResult
from face3d_ros.ros import hri
from face3d_ros.ros.conversions import rgb_to_image_msg

#: REP-155 root of the face topics.
FACES_NS = "/humans/faces"
#: QoS of tf2_ros' TransformBroadcaster (DynamicBroadcasterQoS): reliable, volatile, depth 100.
TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
#: Per-face and list topics: reliable, depth 1 (latest state wins).
HRI_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def availability() -> Dict[str, Optional[str]]:
    """What this ROS installation offers: 'hri' -> None or why not, 'tf' -> 'tf2_ros' |
    'tf2_msgs' | None, 'tf_missing' -> why not (when 'tf' is None)."""
    out: Dict[str, Optional[str]] = {"hri": None, "tf": None, "tf_missing": None}
    if _import("hri_msgs.msg") is None:
        out["hri"] = ("hri_msgs is not installed (apt install ros-$ROS_DISTRO-hri-msgs, or "
                      "build github ros4hri/hri_msgs in your workspace)")
    if _import("tf2_ros") is not None and _import("tf2_msgs.msg") is not None:
        out["tf"] = "tf2_ros"
    elif _import("tf2_msgs.msg") is not None:
        out["tf"] = "tf2_msgs"
    else:
        out["tf_missing"] = ("neither tf2_ros nor tf2_msgs is installed (apt install "
                             "ros-$ROS_DISTRO-tf2-ros)")
    return out


class _FacePubs:
    """The publishers of one confirmed face."""

    def __init__(self, node, fid: str, msgs, sensor_image) -> None:
        base = f"{FACES_NS}/{fid}"
        self.roi = node.create_publisher(msgs.NormalizedRegionOfInterest2D, base + "/roi",
                                         HRI_QOS)
        self.landmarks = node.create_publisher(msgs.FacialLandmarks, base + "/landmarks",
                                               HRI_QOS)
        self.expression = node.create_publisher(msgs.Expression, base + "/expression", HRI_QOS)
        self.facs = node.create_publisher(msgs.FacialActionUnits, base + "/facs", HRI_QOS)
        self.cropped = node.create_publisher(sensor_image, base + "/cropped", HRI_QOS)
        self.aligned = node.create_publisher(sensor_image, base + "/aligned", HRI_QOS)

    def all(self) -> List[object]:
        """Every publisher of the face."""
        return [self.roi, self.landmarks, self.expression, self.facs, self.cropped,
                self.aligned]


class HriBridge:
    """REP-155 topics (``hri``) and/or TF frames (``tf``) of one node. Create it in configure,
    call :meth:`publish` for every processed frame, :meth:`close` on deactivate/cleanup."""

    def __init__(self, node, hri_on: bool, tf_on: bool) -> None:
        self._node = node
        self._faces: Dict[str, _FacePubs] = {}
        self._msgs = None
        self._tracked = None
        self._tf_broadcaster = None
        self._tf_pub = None
        self._tf_msgs = None
        self._geometry = None
        avail = availability()
        log = node.get_logger()
        if hri_on:
            if avail["hri"] is None:
                from sensor_msgs.msg import Image

                self._msgs = importlib.import_module("hri_msgs.msg")
                self._image_type = Image
                self._tracked = node.create_publisher(self._msgs.IdsList,
                                                      FACES_NS + "/tracked", HRI_QOS)
            else:
                log.warning(f"hri is true but the ROS4HRI output is unavailable: "
                            f"{avail['hri']}; publishing face3d's own topics only")
        if tf_on:
            if avail["tf"] is not None:
                self._geometry = importlib.import_module("geometry_msgs.msg")
                self._tf_msgs = importlib.import_module("tf2_msgs.msg")
                if avail["tf"] == "tf2_ros":
                    tf2_ros = importlib.import_module("tf2_ros")
                    self._tf_broadcaster = tf2_ros.TransformBroadcaster(node)
                else:
                    self._tf_pub = node.create_publisher(self._tf_msgs.TFMessage, "/tf",
                                                         TF_QOS)
            else:
                log.warning(f"publish_tf is true but TF is unavailable: {avail['tf_missing']}; "
                            "no face_<id>/gaze_<id> frames")
        #: How each output is served, for the log and diagnostics.
        self.mode = {"hri": "on" if self._msgs is not None else
                     ("unavailable" if hri_on else "off"),
                     "tf": (avail["tf"] if (tf_on and avail["tf"]) else
                            ("unavailable" if tf_on else "off"))}

    @property
    def active(self) -> bool:
        """Whether anything is published (False when all that was asked is unavailable)."""
        return self._msgs is not None or self._tf_broadcaster is not None \
            or self._tf_pub is not None

    @property
    def face_ids(self) -> List[str]:
        """Ids of the faces that have publishers now."""
        return sorted(self._faces)

    def publish(self, result: FrameResult, header, rgb: np.ndarray) -> None:
        """The REP-155 topics and TF frames of one processed frame (confirmed faces only)."""
        confirmed: List[Tuple[str, FaceResult]] = []
        for face in result.faces:
            fid = hri.face_id(face.track_id)
            if fid is not None:
                confirmed.append((fid, face))
        if self._msgs is not None:
            self._publish_hri(confirmed, result, header, rgb)
        if self._tf_broadcaster is not None or self._tf_pub is not None:
            self._publish_tf(confirmed, header)

    def _publish_hri(self, confirmed, result: FrameResult, header, rgb) -> None:
        m = self._msgs
        width, height = result.image_size
        ids = [fid for fid, _ in confirmed]
        for gone in set(self._faces) - set(ids):
            for pub in self._faces.pop(gone).all():
                self._node.destroy_publisher(pub)
        for fid, face in confirmed:
            pubs = self._faces.get(fid)
            if pubs is None:
                pubs = self._faces[fid] = _FacePubs(self._node, fid, m, self._image_type)
            conf = float(np.clip(face.score * face.presence, 0.0, 1.0))
            x0, y0, x1, y1 = hri.normalized_roi(face.box, width, height)
            pubs.roi.publish(m.NormalizedRegionOfInterest2D(header=header, xmin=x0, ymin=y0,
                                                            xmax=x1, ymax=y1, c=conf))
            lm = m.FacialLandmarks(header=header, height=int(height), width=int(width))
            pts = hri.landmarks_70(face.landmarks_2d, width, height, conf)
            lm.landmarks = [m.NormalizedPointOfInterest2D(x=float(x), y=float(y), c=float(c))
                            for x, y, c in pts]
            pubs.landmarks.publish(lm)
            intensity, au_conf = hri.facs_vector(face.expression.as_dict(), face.presence)
            facs = m.FacialActionUnits(header=header)
            facs.intensity, facs.confidence = intensity.tolist(), au_conf.tolist()
            pubs.facs.publish(facs)
            name, strength = hri.categorical_expression(intensity)
            if name:
                pubs.expression.publish(m.Expression(
                    header=header, expression=name, valence=0.0, arousal=0.0,
                    confidence=float(strength * face.presence)))
            if pubs.cropped.get_subscription_count() > 0:
                pubs.cropped.publish(rgb_to_image_msg(hri.cropped_face(rgb, face.box), header))
            if pubs.aligned.get_subscription_count() > 0:
                pubs.aligned.publish(rgb_to_image_msg(
                    hri.aligned_face(rgb, face.box, face.landmarks_2d), header))
        self._tracked.publish(m.IdsList(header=header, ids=ids))

    def _publish_tf(self, confirmed, header) -> None:
        g = self._geometry
        transforms = []
        for fid, face in confirmed:
            pose, gaze = face.head_pose, face.gaze.combined
            for tr in hri.face_transforms(face.track_id, pose.rotation, pose.translation,
                                          gaze.direction, gaze.confidence, header.frame_id):
                ts = g.TransformStamped()
                ts.header.stamp = header.stamp
                ts.header.frame_id = tr.parent
                ts.child_frame_id = tr.child
                t, q = tr.translation, tr.rotation
                ts.transform.translation = g.Vector3(x=float(t[0]), y=float(t[1]),
                                                     z=float(t[2]))
                ts.transform.rotation = g.Quaternion(x=float(q[0]), y=float(q[1]),
                                                     z=float(q[2]), w=float(q[3]))
                transforms.append(ts)
        if not transforms:
            return
        if self._tf_broadcaster is not None:
            self._tf_broadcaster.sendTransform(transforms)
        else:
            self._tf_pub.publish(self._tf_msgs.TFMessage(transforms=transforms))

    def close(self) -> None:
        """Destroy every publisher (deactivate/cleanup); an empty tracked list goes out first
        so that clients drop the faces at once."""
        node = self._node
        for pubs in self._faces.values():
            for pub in pubs.all():
                node.destroy_publisher(pub)
        self._faces.clear()
        if self._tracked is not None:
            if self._msgs is not None:
                self._tracked.publish(self._msgs.IdsList(ids=[]))
            node.destroy_publisher(self._tracked)
            self._tracked = None
        if self._tf_pub is not None:
            node.destroy_publisher(self._tf_pub)
            self._tf_pub = None
        self._tf_broadcaster = None
        self._msgs = None
