"""The face3d people node: who the faces are (enrolled people, re-identification, enrolment).

The perception node (``face3d_node``, ``ros/node.py``) publishes what is seen; this lifecycle
node ``face3d_people`` adds who it is, from that output alone (no models, no GPU).

Topics (relative, remap them; see docs/ros.md):

* in: ``faces`` (face3d_msgs/Face3DArray, reliable); ``image`` (sensor_msgs/Image) or
  ``image/compressed`` (``use_compressed``), subscribed only while an enrolment runs, paired
  with the faces by header stamp (QoS ``input_reliability``).
* out (reliable): ``people`` (face3d_msgs/RecognisedPeople: the faces message's header and,
  per recognised face, its track id, person id, name, confidence and shape distance; one per
  faces message while ``reidentify`` is on) and ``enrolled_faces``
  (visualization_msgs/MarkerArray, transient local: latched, the enrolled models).
* action: ``~/enroll_face`` (face3d_msgs/action/EnrollFace).

Enrolled people: configure loads every model file in ``enrollment_dir`` (a bad file is skipped
with one warning naming it and why); a successful enrolment adds its model. With ``reidentify``
each tracked face is matched to them by identity shape (``core.people.identity``,
``ros/gallery.py``).

Enrolment (the action): one goal at a time; a goal is rejected (the reason in the log) while
another runs, while the node is not active, or with a bad ``timeout_s`` / ``face_id``. The goal
collects front, left and right views of the face (``ros/enrollment.py``) from the faces paired
with their images, sends the guidance and the views covered as feedback, then fuses the views
and writes the model once, with its final person id and name: a new id, or the id, name and
file of the enrolled person it turns out to be (their old file is replaced). A cancel, or a
deactivate / cleanup / shutdown while the views are being collected, ends the goal with nothing
written (canceled, or aborted by the transition).

Threads: faces and images are handled in one callback group, the action in another, so that
the goal waits for views while faces flow; :func:`main` spins a multi-threaded executor.

One module over 400 lines because it is one thing: the node class (lifecycle, the faces and
image callbacks that feed one goal, the action) and its ``main``; the parts that need no node
are in ``ros/gallery.py`` (ids, matching, messages) and ``ros/enrollment.py`` (views, fusing,
writing).
"""

from __future__ import annotations

import collections
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from face3d_msgs.action import EnrollFace
from face3d_msgs.msg import Face3DArray, RecognisedPeople
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage
from visualization_msgs.msg import MarkerArray

from face3d_ros.core.io.face_fields import frame_from_message
from face3d_ros.core.people.identity import Reidentifier
from face3d_ros.core.people.model_io import FaceModel
from face3d_ros.core.types import FrameResult
from face3d_ros.ros.conversions import ImageFormatError, compressed_msg_to_rgb, image_msg_to_rgb
from face3d_ros.ros.enrollment import CollectorStatus, EnrollmentCollector, EnrollmentOutcome
from face3d_ros.ros.gallery import Gallery, Person, gallery_markers, load_folder, people_msg
from face3d_ros.ros.input_size import header_seconds
from face3d_ros.ros.node_common import WarnOnce, camera_subscription, logged_transition
from face3d_ros.ros.param_spec import (PEOPLE_PARAMETERS, ParameterStartupError, PeopleConfig,
                                       startup_problems)
from face3d_ros.ros.node_runner import run_node
from face3d_ros.ros.params import (SpecParameters, declare_parameters, read_configs,
                                   validate_update)


NODE_NAME = "face3d_people"
#: A track not seen for this many seconds of faces-message time is forgotten (it left the view;
#: the perception node drops a track after max_missed frames).
TRACK_FORGET_S = 2.0
#: Images kept while waiting for their faces message (same stamp): the newest IMAGE_DEPTH (the
#: perception node answers an image after its processing time and skips images while busy:
#: latest frame wins; an image older than one already paired is dropped, it can never pair).
#: A count, not a span of image time: a slow camera's images are as far apart as they are.
IMAGE_DEPTH = 16
#: Faces messages kept while waiting for their image (they rarely come first).
FACES_DEPTH = 8
#: Warn when no faces message arrived for this long while active, seconds (again every minute).
NO_FACES_WARN_S = 10.0
#: The wall clock ends a goal this long after its timeout_s when no frames come to end it.
ENROLL_WALL_GRACE_S = 5.0
#: Longest time a lifecycle transition waits for a running goal to end.
ENROLL_CANCEL_WAIT_S = 30.0
#: Period of the goal's checks for cancel, abort and new feedback, seconds.
ENROLL_POLL_S = 0.05


def _stamp_key(header) -> Tuple[int, int]:
    return (int(header.stamp.sec), int(header.stamp.nanosec))


@dataclass
class _Enrolment:
    """One accepted goal: its collector, the frames waiting for a partner and its state
    (guarded by the node's lock)."""

    collector: EnrollmentCollector
    images: "collections.OrderedDict" = field(default_factory=collections.OrderedDict)
    frames: "collections.OrderedDict" = field(default_factory=collections.OrderedDict)
    status: Optional[CollectorStatus] = None
    done: threading.Event = field(default_factory=threading.Event)
    abort_reason: Optional[str] = None
    #: Held while a frame is offered to the collector: the goal sets ``done`` under it, so that
    #: no offer runs while (or after) the views are fused.
    offer_lock: threading.Lock = field(default_factory=threading.Lock)


class PeopleNode(SpecParameters, LifecycleNode):
    """Lifecycle node ``face3d_people`` (see the module docstring for topics and behaviour)."""

    PARAM_SPECS = PEOPLE_PARAMETERS

    def __init__(self, **kwargs) -> None:
        """Declare the parameters and the action; the gallery is loaded at configure.

        Raises :class:`ParameterStartupError` when a value given at start is out of range, of
        the wrong type or not one of the choices.
        """
        super().__init__(NODE_NAME, **kwargs)
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        problems = startup_problems({n: p.value for n, p in overrides.items()},
                                    PEOPLE_PARAMETERS)
        if problems:
            self.destroy_node()
            raise ParameterStartupError(problems)
        declare_parameters(self, PEOPLE_PARAMETERS)
        self._cfg: PeopleConfig = read_configs(self, PEOPLE_PARAMETERS)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._lock = threading.Lock()
        self._gallery: Optional[Gallery] = None
        self._pub: Dict[str, object] = {}
        self._faces_sub = None
        self._image_sub = None
        self._active = False
        self._seen: Dict[int, float] = {}
        self._last_stamp: Optional[float] = None
        self._warn_once = WarnOnce(self.get_logger())
        self._faces_t = 0.0
        self._input_timer = None
        self._enrol: Optional[_Enrolment] = None
        self._enroll_idle = threading.Event()
        self._enroll_idle.set()
        #: Set by the shutdown transition: :func:`main` then stops spinning and exits.
        self.finished = threading.Event()
        # Faces and images one at a time (they share the pairing state); the action beside
        # them, so that a goal waits for views while faces flow.
        self._data_group = MutuallyExclusiveCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        # The action lives as long as the node: a goal in flight can end when the node is
        # cleaned up under it; unless active, goals are rejected.
        self._action = ActionServer(
            self, EnrollFace, "~/enroll_face", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=self._action_group)

    @property
    def autostart(self) -> bool:
        """Whether :func:`main` configures and activates the node at start."""
        return self._cfg.autostart

    def _on_set_parameters(self, params):
        current = {s.name: self.get_parameter(s.name).value for s in PEOPLE_PARAMETERS}
        result, cfg = validate_update(current, params, PEOPLE_PARAMETERS)
        if not result.successful:
            self.get_logger().warning(f"Rejected parameter change: {result.reason}")
            return result
        with self._lock:
            self._cfg = cfg
            if self._gallery is not None:
                self._apply_reid_settings(self._gallery)
        return result

    def _apply_reid_settings(self, gallery: Gallery) -> None:
        """Live parameter values into the matcher (under the node's lock)."""
        cfg = self._cfg
        gallery.reid.threshold, gallery.reid.margin = cfg.reid_threshold, cfg.reid_margin
        gallery.reid.min_frames = cfg.reid_min_frames

    # -- lifecycle -----------------------------------------------------------------------
    @logged_transition
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the enrolled models and create the publishers (the gallery is latched)."""
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub = {
            "people": self.create_publisher(RecognisedPeople, "people", reliable),
            "enrolled": self.create_publisher(MarkerArray, "enrolled_faces", latched),
        }
        self._load_gallery()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the faces; goals are accepted from now on."""
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST)
        self._faces_sub = self.create_subscription(Face3DArray, "faces", self._on_faces,
                                                   reliable, callback_group=self._data_group)
        with self._lock:
            self._active = True
            self._seen, self._last_stamp = {}, None
            self._faces_t = time.monotonic()
        self._input_timer = self.create_timer(1.0, self._check_faces,
                                              callback_group=self._data_group)
        topic = getattr(self._faces_sub, "topic_name", "faces")
        self.get_logger().info(f"Active: recognising the faces on {topic}"
                               + ("" if self._cfg.reidentify else " (reidentify is off)"))
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Abort a running goal (nothing written) and unsubscribe."""
        self._stop("the node was deactivated")
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Abort a running goal, forget the gallery and destroy the publishers."""
        self._stop("the node was cleaned up")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop everything from any state; :func:`main` then ends the process."""
        self._stop("the node is shutting down")
        self._release()
        self.finished.set()
        return TransitionCallbackReturn.SUCCESS

    @logged_transition
    def on_error(self, state: State) -> TransitionCallbackReturn:
        """After a failed transition: stop and free everything (back to unconfigured)."""
        self._stop("a lifecycle transition failed")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self, why: str) -> None:
        """End a running goal (aborted, nothing written) and unsubscribe from everything."""
        with self._lock:
            self._active = False
        if self._input_timer is not None:
            self.destroy_timer(self._input_timer)
            self._input_timer = None
        self._abort_enrolment(why)
        for sub in (self._faces_sub, self._image_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self._faces_sub = self._image_sub = None

    def _release(self) -> None:
        with self._lock:
            for pub in self._pub.values():
                self.destroy_publisher(pub)
            self._pub = {}
            self._gallery = None

    def shutdown_processing(self) -> None:
        """End a running goal and unsubscribe (before the node is destroyed)."""
        self._stop("the node is shutting down")

    def destroy_node(self) -> None:
        """Destroy the action server with the node."""
        action = getattr(self, "_action", None)
        if action is not None:
            action.destroy()
            self._action = None
        super().destroy_node()

    # -- gallery -------------------------------------------------------------------------
    def _enrollment_dir(self) -> str:
        return os.path.expanduser(self._cfg.enrollment_dir or os.path.join(
            "~", ".local", "share", "face3d", "enrolled"))

    def _load_gallery(self) -> None:
        """Load every model of ``enrollment_dir``; publish the gallery markers."""
        cfg = self._cfg
        folder = self._enrollment_dir()
        gallery = Gallery(Reidentifier(cfg.reid_threshold, cfg.reid_margin,
                                       cfg.reid_min_frames))
        people, problems = load_folder(folder)
        for problem in problems:
            self.get_logger().warning(problem)
        for person in people:
            gallery.add(person)
        with self._lock:
            self._gallery = gallery
        listed = ", ".join(f"{p.name} (id {p.person_id})" for p in people) or "none"
        self.get_logger().info(f"Enrolled people from {folder}: {listed}")
        self._publish_gallery()

    def _publish_gallery(self) -> None:
        pub = self._pub.get("enrolled")
        with self._lock:
            people = self._gallery.people if self._gallery is not None else None
        if pub is None or people is None:
            return
        pub.publish(gallery_markers(people, self._cfg.enrolled_frame_id))

    def _assign(self, model: FaceModel) -> Tuple[int, str, str]:
        """The fused model's person id, name and the file it replaces (see Gallery.identify)."""
        with self._lock:
            gallery = self._gallery
            if gallery is None:
                raise RuntimeError("the gallery was released (node cleaned up)")
            pid, name, replaces = gallery.identify(model)
        if replaces:
            self.get_logger().info(f"The enrolled face is {name} (id {pid}): their model "
                                   f"{replaces} is replaced")
        return pid, name, replaces

    # -- faces ---------------------------------------------------------------------------
    def _alive(self, frame: FrameResult) -> list:
        """Track ids seen within TRACK_FORGET_S of this frame's stamp (the people node's
        stand-in for the tracker's briefly missed tracks)."""
        stamp = frame.stamp or 0.0
        if self._last_stamp is not None and stamp < self._last_stamp - 1.0:
            self._seen = {}  # time went back (a replayed bag, a restarted camera)
        self._last_stamp = stamp
        for face in frame.faces:
            if face.track_id >= 0:
                self._seen[face.track_id] = stamp
        self._seen = {t: s for t, s in self._seen.items() if stamp - s <= TRACK_FORGET_S}
        return list(self._seen)

    def _on_faces(self, msg: Face3DArray) -> None:
        with self._lock:
            if not self._active:
                return
            self._faces_t = time.monotonic()
            wanted = ((self._gallery is not None and self._cfg.reidentify)
                      or self._enrol is not None)
        if not wanted:  # nothing to recognise, no goal: the message need not be read
            return
        try:
            frame = frame_from_message(msg, header_seconds(msg.header))
        except ValueError as exc:
            self._warn_once("bad_faces", f"Ignored a faces message: {exc}")
            return
        with self._lock:
            if not self._active:
                return
            gallery, cfg = self._gallery, self._cfg
            people = None
            if gallery is not None and cfg.reidentify:
                matches = gallery.recognise(frame, self._alive(frame))
                people = people_msg(msg.header, matches, cfg.reid_threshold)
            enrol = self._enrol
            if enrol is not None:
                self._queue(enrol, "frames", _stamp_key(msg.header), frame)
            pub = self._pub.get("people") if people is not None else None
            if pub is not None:
                # Under the lock: _release destroys the publishers under it too, so a message
                # in flight never meets a destroyed publisher.
                pub.publish(people)
        if enrol is not None:
            self._pair(enrol)

    def _on_image(self, msg) -> None:
        with self._lock:
            enrol = self._enrol
            if enrol is None:
                return
            self._queue(enrol, "images", _stamp_key(msg.header), msg)
        self._pair(enrol)

    @staticmethod
    def _queue(enrol: _Enrolment, which: str, key, item) -> None:
        """Keep ``item`` under its stamp ``key`` (under the node's lock), dropping the oldest
        beyond the bounds of ``which`` ("images" or "frames")."""
        box = getattr(enrol, which)
        box[key] = item
        while len(box) > (IMAGE_DEPTH if which == "images" else FACES_DEPTH):
            box.popitem(last=False)

    def _pair(self, enrol: _Enrolment) -> None:
        """Offer the goal's collector every faces message whose image has come (same stamp),
        oldest first; partners of older stamps are dropped."""
        while True:
            with self._lock:
                keys = [k for k in enrol.frames if k in enrol.images]
                if not keys or enrol.done.is_set():
                    return
                key = min(keys)
                frame, image = enrol.frames.pop(key), enrol.images.pop(key)
                for box in (enrol.frames, enrol.images):
                    for old in [k for k in box if k < key]:
                        del box[old]
            try:
                rgb = (compressed_msg_to_rgb(image) if isinstance(image, CompressedImage)
                       else image_msg_to_rgb(image))
            except ImageFormatError as exc:
                self._warn_once(f"bad_image:{exc.cause}",
                                f"Dropped a bad image while enrolling: {exc}")
                continue
            with enrol.offer_lock:
                if enrol.done.is_set():
                    return
                status = enrol.collector.offer(frame, rgb, header_seconds(image.header))
            with self._lock:
                changed = (enrol.status is None or status.guidance != enrol.status.guidance
                           or status.covered != enrol.status.covered)
                enrol.status = status
            if changed:
                covered = ", ".join(status.covered) or "none"
                self.get_logger().info(f"Enrolment of face {status.face_id}: {status.guidance}"
                                       f" (views so far: {covered})")
            if status.finished:
                enrol.done.set()

    def _check_faces(self) -> None:
        """Warn when no faces message arrived for NO_FACES_WARN_S, naming the topic and its
        publishers (launched and nothing happens: a perception node in another namespace)."""
        with self._lock:
            since = time.monotonic() - self._faces_t
        if since < NO_FACES_WARN_S or self._faces_sub is None:
            return
        topic = getattr(self._faces_sub, "topic_name", "faces")
        count = self.count_publishers(topic)
        why = (f"nobody publishes {topic}: start face3d_node in this namespace or remap "
               "'faces' to its topic" if count == 0 else
               f"{count} publisher(s) on {topic}, but nothing arrived (is the camera running?)")
        self._warn_once("no_faces", f"No faces received for {since:.0f} s; {why}")

    # -- enrolment -----------------------------------------------------------------------
    def _on_goal(self, goal) -> GoalResponse:
        """Accept one goal at a time while active; the reason of a rejection is logged."""
        timeout = float(goal.timeout_s)
        reason = ""
        if not (math.isfinite(timeout) and timeout > 0.0):
            reason = f"timeout_s must be a positive number of seconds, got {timeout}"
        elif int(goal.face_id) < -1:
            reason = f"face_id must be a track id (>= 0) or -1 (the largest face), got " \
                     f"{goal.face_id}"
        with self._lock:
            if not reason and not self._active:
                reason = "the node is not active: activate it, then send the goal again"
            elif not reason and (self._enrol is not None or not self._enroll_idle.is_set()):
                reason = "another enrolment is running: wait for it to finish or cancel it"
            if not reason:
                folder = os.path.expanduser(goal.output_dir or self._enrollment_dir())
                self._enrol = _Enrolment(EnrollmentCollector(goal.face_id, timeout, folder))
                self._enroll_idle.clear()
        if reason:
            self.get_logger().warning(f"Rejected an enroll_face goal: {reason}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        """Cancelling is always accepted while the views are being collected."""
        return CancelResponse.ACCEPT

    def _abort_enrolment(self, why: str) -> None:
        """End a running goal (aborted, nothing written) and wait until it has."""
        with self._lock:
            enrol = self._enrol
            if enrol is None and self._enroll_idle.is_set():
                return
            if enrol is not None:
                enrol.abort_reason = why
                enrol.done.set()
        if not self._enroll_idle.wait(ENROLL_CANCEL_WAIT_S):
            self.get_logger().error(
                f"The running enroll_face goal did not end within {ENROLL_CANCEL_WAIT_S:g} s "
                f"({why}); going on without it")

    def _subscribe_images(self) -> None:
        cfg = self._cfg
        topic, msg_type, qos = camera_subscription(
            self, cfg.use_compressed, cfg.input_reliability, depth=2)
        self._image_sub = self.create_subscription(msg_type, topic, self._on_image, qos,
                                                   callback_group=self._data_group)

    def _execute(self, goal_handle):
        """The body of an accepted goal: collect views (feedback as they come), then fuse and
        write unless cancelled or aborted (then nothing is written)."""
        try:
            return self._run_goal(goal_handle)
        finally:
            with self._lock:
                self._enrol = None
            if self._image_sub is not None:
                self.destroy_subscription(self._image_sub)
                self._image_sub = None
            self._enroll_idle.set()  # a transition waiting in _abort_enrolment goes on

    def _run_goal(self, goal_handle):
        log = self.get_logger()
        result = EnrollFace.Result(person_id=-1)
        with self._lock:
            enrol = self._enrol
        if enrol is None:  # a transition ended it before it started
            goal_handle.abort()
            result.message = "enrolment aborted before it started; nothing was saved"
            return result
        goal = goal_handle.request
        timeout = float(goal.timeout_s)
        log.info(f"Enrolling face {goal.face_id} into {enrol.collector.output_dir}: look at the "
                 f"camera, then turn the head slowly left and right (up to {timeout:g} s)")
        self._subscribe_images()
        deadline = time.monotonic() + timeout + ENROLL_WALL_GRACE_S
        sent: Optional[tuple] = None

        def report() -> None:
            """Publish the collector's status as feedback when it changed since the last."""
            nonlocal sent
            with self._lock:
                status = enrol.status
            said = None if status is None else (status.guidance, status.covered, status.face_id)
            if said is not None and said != sent:
                sent = said
                goal_handle.publish_feedback(EnrollFace.Feedback(
                    views_covered=list(status.covered), guidance=status.guidance,
                    face_id=int(status.face_id)))

        while not enrol.done.wait(ENROLL_POLL_S):
            if goal_handle.is_cancel_requested:
                break
            report()
            if time.monotonic() > deadline:
                break  # no frames came to end it on image time
        with enrol.offer_lock:  # a frame being offered now is the last
            enrol.done.set()
        # The frame that ended the collection (its last view, or image time out) may have come
        # between two polls: its status goes out too, before the result.
        report()
        with self._lock:
            aborted = enrol.abort_reason
        if aborted is not None:
            result.message = (f"enrolment aborted: {aborted} before the views were fused; "
                              "nothing was saved. Send the goal again while the node is active")
            log.warning(result.message)
            goal_handle.abort()
            return result
        if goal_handle.is_cancel_requested:
            result.message = "enrolment cancelled before the views were fused; nothing was saved"
            log.info(result.message)
            goal_handle.canceled()
            return result
        try:
            outcome = enrol.collector.finish(assign=self._assign)
        except (OSError, RuntimeError, ValueError) as exc:
            outcome = EnrollmentOutcome(False, f"enrolment failed: {exc}")
        result.success = outcome.success
        result.message = outcome.message
        result.model_path = outcome.model_path
        result.person_id = int(outcome.person_id)
        result.view_names = list(outcome.view_names)
        result.view_coverage = [float(c) for c in outcome.view_coverage]
        result.coverage = float(outcome.coverage)
        if not outcome.success or outcome.model is None:
            log.warning(f"Enrolment failed: {outcome.message}")
            goal_handle.abort()
            return result
        log.info(f"Enrolment done: {outcome.message}")
        with self._lock:
            if self._gallery is not None:
                self._gallery.add(Person(outcome.person_id, outcome.model, outcome.model_path))
        log.info(f"Added enrolled person {outcome.model.name} (id {outcome.person_id}) from "
                 f"{outcome.model_path}")
        self._publish_gallery()
        goal_handle.succeed()
        return result


def main(args=None) -> int:
    """Run the people node; with ``autostart`` it configures and activates itself. Exit status and
    signals: ``ros/node_runner.py``."""
    # Four threads: faces/images, the action's goal (it waits for views), the action's
    # services and the lifecycle/parameter services (a transition waits for the goal).
    return run_node(PeopleNode, NODE_NAME, PEOPLE_PARAMETERS, threads=4, args=args)


if __name__ == "__main__":
    sys.exit(main())
