"""The parameter spec of the face3d nodes: names, defaults, ranges, choices, descriptions,
typed configs and their checks, without ROS.

Two nodes, one spec style. Every parameter of the perception node ``face3d`` is described once
in :data:`PARAMETERS`, every parameter of the people node ``face3d_people`` in
:data:`PEOPLE_PARAMETERS` (name, description, range or choices, whether it may change while the
node runs, and which config it feeds). Defaults of the engine and tracker parameters are the
defaults of :class:`EngineConfig` and :class:`TrackerConfig`, and their ranges and choices are
``core.config.LIMITS`` and ``CHOICES`` (the configs check the same table); those of the
perception node's own parameters come from :class:`NodeConfig`, those of the people node from
:class:`PeopleConfig`. A few names (``autostart``, ``use_compressed``, ``input_reliability``)
belong to both nodes with one meaning, one description and one default.

Made from this spec: the nodes' ParameterDescriptors and set-parameter checks
(``ros.params``, the rclpy side), the start-up checks, the offline evaluation's configs
(``tools.eval_input``, which runs without ROS), the parameter tables of docs/ros.md
(``tools.param_table``; a test fails when they differ) and the check of the shipped
``config/face3d.yaml`` (one ``/**`` section; each node takes the names it declares).

One module (over 400 lines): it is the spec, the one place of every parameter; about half of
it is the two tables of parameters and their descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from face3d_ros.core.config import (CHOICES, LIMITS, EngineConfig, TrackerConfig, check_choice,
                                    check_fields, check_range)
from face3d_ros.core.people.identity import REID_MARGIN, REID_MIN_FRAMES, REID_THRESHOLD

#: Accepted range (inclusive) of each numeric setting of the nodes themselves: the one place
#: of these ranges (the configs below check them, the descriptors show them).
NODE_LIMITS: Dict[str, Tuple[float, float]] = {
    "marker_lifetime_s": (0.0, 60.0),
    "no_image_warn_s": (0.5, 3600.0),
    "diagnostics_period_s": (0.1, 60.0),
    "max_image_side": (160, 16384),
    "reid_threshold": (0.001, 0.2),
    "reid_margin": (0.0, 0.1),
    "reid_min_frames": (1, 100),
}
#: Accepted values of each node setting that is one of a few words.
NODE_CHOICES: Dict[str, Tuple[str, ...]] = {"input_reliability": ("best_effort", "reliable")}


@dataclass(frozen=True)
class NodeConfig:
    """Settings of the perception node itself (the engine and tracker have their own configs).

    autostart: configure and activate at start when no lifecycle manager does it.
    use_compressed: subscribe to ``image/compressed`` (sensor_msgs/CompressedImage) instead of
        ``image``.
    input_reliability: QoS reliability of the image and camera_info subscriptions,
        "best_effort" (connects to reliable and best-effort publishers) or "reliable".
    use_camera_info: take intrinsics from ``camera_info``; False always assumes
        ``default_hfov_deg``.
    publish_markers, publish_gaze, publish_debug_image: enable those outputs (markers and the
        debug image are only computed while somebody subscribes).
    marker_lifetime_s: lifetime of RViz markers, seconds (0 = forever).
    no_image_warn_s: warn when no image arrived for this long, seconds.
    diagnostics_period_s: period of ``/diagnostics`` messages, seconds.
    max_image_side: frames whose longer side exceeds this many pixels are downscaled to it
        for processing; results are given in the original frame's pixels.
    hri: publish the ROS4HRI (REP-155) face topics under ``/humans/faces`` (needs hri_msgs).
    publish_tf: broadcast the ``face_<id>`` and ``gaze_<id>`` TF frames of confirmed faces
        (needs tf2_ros or tf2_msgs).
    """

    autostart: bool = True
    use_compressed: bool = False
    input_reliability: str = "best_effort"
    use_camera_info: bool = True
    publish_markers: bool = True
    publish_gaze: bool = True
    publish_debug_image: bool = True
    marker_lifetime_s: float = 0.5
    no_image_warn_s: float = 5.0
    diagnostics_period_s: float = 1.0
    max_image_side: int = 1920
    hri: bool = False
    publish_tf: bool = False

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field and the accepted values."""
        check_fields(self, NODE_LIMITS, NODE_CHOICES)


@dataclass(frozen=True)
class PeopleConfig:
    """Settings of the people node ``face3d_people`` (gallery, re-identification, enrolment).

    autostart: configure and activate at start when no lifecycle manager does it.
    use_compressed: while enrolling, subscribe to ``image/compressed`` instead of ``image``.
    input_reliability: QoS reliability of the image subscription (only while enrolling),
        "best_effort" or "reliable"; the ``faces`` subscription is always reliable.
    enrollment_dir: where the ``enroll_face`` action writes models when its goal names no
        folder, and where configure loads the enrolled models from; "" uses
        ``~/.local/share/face3d/enrolled``.
    reidentify: match tracked faces to the enrolled models by identity shape.
    reid_threshold: largest shape distance (unitless, fraction of the face size) of a match.
    reid_margin: least gap between the second-best and the best distance of a match.
    reid_min_frames: frames a track must have before it can be recognised.
    enrolled_frame_id: frame of the ``enrolled_faces`` gallery markers.
    """

    autostart: bool = True
    use_compressed: bool = False
    input_reliability: str = "best_effort"
    enrollment_dir: str = ""
    reidentify: bool = True
    reid_threshold: float = REID_THRESHOLD
    reid_margin: float = REID_MARGIN
    reid_min_frames: int = REID_MIN_FRAMES
    enrolled_frame_id: str = "face3d_enrolled"

    def __post_init__(self) -> None:
        """Reject values that cannot work, naming the field and the accepted values."""
        check_fields(self, NODE_LIMITS, NODE_CHOICES)
        if not self.enrolled_frame_id:
            raise ValueError("enrolled_frame_id must not be empty (e.g. face3d_enrolled)")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter.

    target: "engine", "tracker", "node" (the perception node's configs) or "people" (the
    people node's): the config dataclass the value goes to.
    limits: (lo, hi) inclusive range for numbers, or None. choices: allowed strings, or None.
    Both come from the tables the configs check (see ``__post_init__``).
    read_only: True when the value cannot change while the node runs (set it in the params
    file or on the command line instead).
    """

    name: str
    target: str
    description: str
    limits: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None
    read_only: bool = False

    def __post_init__(self) -> None:
        """Ranges and choices come from the tables the configs check (``core.config.LIMITS``
        and ``CHOICES`` for the engine and tracker, :data:`NODE_LIMITS` and
        :data:`NODE_CHOICES` for the nodes): one place each."""
        limits = {**LIMITS, **NODE_LIMITS}
        choices = {**CHOICES, **NODE_CHOICES}
        if self.limits is None and self.name in limits:
            object.__setattr__(self, "limits", limits[self.name])
        if self.choices is None and self.name in choices:
            object.__setattr__(self, "choices", choices[self.name])

    @property
    def default(self) -> Any:
        """Default value, taken from the dataclass of ``target`` ("" for a None model_dir)."""
        value = getattr(_DEFAULTS[self.target], self.name)
        return "" if value is None else value


_DEFAULTS = {"engine": EngineConfig(), "tracker": TrackerConfig(), "node": NodeConfig(),
             "people": PeopleConfig()}

#: Every parameter of the perception node ``face3d``, in the order of config/face3d.yaml.
PARAMETERS: Tuple[ParamSpec, ...] = (
    # Engine.
    ParamSpec("device", "engine",
              "Torch device: 'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.",
              read_only=True),
    ParamSpec("backend", "engine",
              "Inference backend: 'auto' (torch on CUDA, LiteRT on the CPU), 'torch' or "
              "'litert' (CPU only).", read_only=True),
    ParamSpec("threads", "engine",
              "CPU threads of the networks (0: one per physical core).",
              read_only=True),
    ParamSpec("model_dir", "engine",
              "Folder with the verified model files; empty uses $FACE3D_MODEL_DIR or "
              "~/.cache/face3d/models (fill it with face3d-fetch-models).", read_only=True),
    ParamSpec("detector", "engine",
              "Face detector: 'short' (faces within ~2 m), 'full' (up to ~5 m) or 'both'.",
              read_only=True),
    ParamSpec("refine_iris", "engine",
              "Run the iris network (needed for gaze and for metric scale from the iris).",
              read_only=True),
    ParamSpec("mesh_flip", "engine",
              "Average the mesh network over each face crop and its mirror image: its left/right "
              "bias cancels (gaze mirror bias 1.9 -> 0.3 deg on renders); one more mesh forward "
              "per face."),
    ParamSpec("min_detection_score", "engine", "Detector score threshold."),
    ParamSpec("nms_iou", "engine", "IoU above which detections are merged."),
    ParamSpec("max_faces", "engine",
              "At most this many faces per image; more are counted (diagnostics "
              "`faces_dropped`) and warned about."),
    ParamSpec("min_face_px", "engine",
              "Smallest face to find, px: the detector also scans overlapping tiles sized from "
              "it and the image size (0: the whole image only)."),
    ParamSpec("min_presence", "engine",
              "Faces whose mesh presence score is below this are dropped."),
    ParamSpec("iris_diameter_m", "engine",
              "Human iris diameter used for metric scale, metres."),
    ParamSpec("default_hfov_deg", "engine",
              "Horizontal field of view assumed without a valid camera_info, degrees."),
    # Tracker.
    ParamSpec("detect_every_n", "tracker",
              "Run the detector at least every N frames while faces track."),
    ParamSpec("max_missed", "tracker",
              "Frames a track survives without a match before it is dropped."),
    ParamSpec("min_hits", "tracker",
              "Consecutive matches before a new track gets its id."),
    ParamSpec("match_iou", "tracker",
              "Least box IoU for a detection to continue a track."),
    ParamSpec("min_appearance", "tracker",
              "Least correlation of a track's aligned face thumbnails between frames; below it "
              "the face is another person and gets a new track (0 disables)."),
    ParamSpec("smoothing", "tracker", "One-Euro smoothing of landmarks, pose and gaze."),
    ParamSpec("min_cutoff_hz", "tracker", "One-Euro minimum cutoff frequency, Hz."),
    ParamSpec("beta", "tracker", "One-Euro speed coefficient."),
    ParamSpec("d_cutoff_hz", "tracker", "One-Euro derivative cutoff frequency, Hz."),
    # Node.
    ParamSpec("autostart", "node",
              "Configure and activate at start (false when a lifecycle manager or launch "
              "does it).", read_only=True),
    ParamSpec("use_compressed", "node",
              "Subscribe to image/compressed (CompressedImage) instead of image.",
              read_only=True),
    ParamSpec("input_reliability", "node",
              "Reliability of the camera subscriptions (image and camera_info; the people "
              "node's image while enrolling): 'best_effort' (matches any camera) or "
              "'reliable'.", read_only=True),
    ParamSpec("use_camera_info", "node",
              "Take intrinsics from camera_info; false always assumes default_hfov_deg."),
    ParamSpec("publish_markers", "node",
              "Publish RViz markers on face_markers (computed only while subscribed)."),
    ParamSpec("publish_gaze", "node", "Publish combined gaze rays as a PoseArray on gaze."),
    ParamSpec("publish_debug_image", "node",
              "Publish the overlay on debug_image (computed only while subscribed)."),
    ParamSpec("marker_lifetime_s", "node", "Lifetime of RViz markers, seconds (0 = forever)."),
    ParamSpec("no_image_warn_s", "node",
              "Warn when no image arrived for this many seconds."),
    ParamSpec("diagnostics_period_s", "node", "Period of /diagnostics messages, seconds.",
              read_only=True),
    ParamSpec("max_image_side", "node",
              "Frames whose longer side exceeds this many pixels are downscaled to it for "
              "processing (bounded memory and time); results are in the original pixels."),
    ParamSpec("hri", "node",
              "Publish the ROS4HRI (REP-155) face topics under /humans/faces (needs hri_msgs; "
              "without it one warning and face3d's own topics only).", read_only=True),
    ParamSpec("publish_tf", "node",
              "Broadcast the TF frames face_<id> and gaze_<id> of confirmed faces (needs tf2_ros "
              "or tf2_msgs).", read_only=True),
)

#: Names both nodes declare, with one meaning (the people node's copies of these specs).
SHARED_NAMES = ("autostart", "use_compressed", "input_reliability")

#: Every parameter of the people node ``face3d_people``, in the order of config/face3d.yaml
#: (the shared names first, where the perception node's section has them).
PEOPLE_PARAMETERS: Tuple[ParamSpec, ...] = tuple(
    replace(s, target="people") for s in PARAMETERS if s.name in SHARED_NAMES) + (
    ParamSpec("enrollment_dir", "people",
              "Folder of the enrolled models: loaded at configure, and where the enroll_face "
              "action writes when the goal names none; empty uses "
              "~/.local/share/face3d/enrolled.", read_only=True),
    ParamSpec("reidentify", "people",
              "Match tracked faces to the enrolled models by identity shape and publish the "
              "recognised ones on people."),
    ParamSpec("reid_threshold", "people",
              "Largest identity-shape distance of a match (fraction of the face size)."),
    ParamSpec("reid_margin", "people",
              "Least gap between the second-best and the best distance of a match."),
    ParamSpec("reid_min_frames", "people",
              "Frames a track must have before it can be recognised."),
    ParamSpec("enrolled_frame_id", "people",
              "Frame of the enrolled_faces gallery markers (set it as RViz's fixed frame, or "
              "place it with a static transform).", read_only=True),
)

SPECS: Dict[str, ParamSpec] = {s.name: s for s in PARAMETERS}
PEOPLE_SPECS: Dict[str, ParamSpec] = {s.name: s for s in PEOPLE_PARAMETERS}


def _by_name(specs: Sequence[ParamSpec]) -> Dict[str, ParamSpec]:
    if specs is PARAMETERS:
        return SPECS
    if specs is PEOPLE_PARAMETERS:
        return PEOPLE_SPECS
    return {s.name: s for s in specs}


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_value(spec: ParamSpec, value: Any) -> Optional[str]:
    """None when ``value`` is acceptable for ``spec``, else the reason it is not."""
    expected = type(spec.default)
    ok_type = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type = True
    if not ok_type:
        return f"{spec.name} must be {_TYPE_WORDS[expected]}, got {value!r}"
    try:  # the configs' own checks: one wording for the node and the library
        if spec.limits is not None:
            check_range(spec.name, value, *spec.limits)
        if spec.choices is not None:
            check_choice(spec.name, value, spec.choices)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Face3DConfig:
    """The three typed configs the node runs with."""

    engine: EngineConfig
    tracker: TrackerConfig
    node: NodeConfig


def _grouped(values: Mapping[str, Any],
             specs: Sequence[ParamSpec]) -> Dict[str, Dict[str, Any]]:
    """Checked values by config target; ``ValueError`` naming an unknown or bad one."""
    by_name = _by_name(specs)
    groups: Dict[str, Dict[str, Any]] = {t: {} for t in _DEFAULTS}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}")
        problem = check_value(spec, value)
        if problem:
            raise ValueError(problem)
        if isinstance(spec.default, float):
            value = float(value)
        if spec.name == "model_dir" and value == "":
            value = None
        groups[spec.target][name] = value
    return groups


def configs_from_values(values: Mapping[str, Any]) -> Face3DConfig:
    """The perception node's typed configs from parameter name -> value (missing names keep
    defaults).

    Raises ``ValueError`` naming the parameter when a value or a combination is invalid.
    """
    groups = _grouped(values, PARAMETERS)
    return Face3DConfig(
        engine=replace(_DEFAULTS["engine"], **groups["engine"]),
        tracker=replace(_DEFAULTS["tracker"], **groups["tracker"]),
        node=replace(_DEFAULTS["node"], **groups["node"]),
    )


def people_config_from_values(values: Mapping[str, Any]) -> PeopleConfig:
    """The people node's :class:`PeopleConfig` from parameter name -> value (missing names
    keep defaults). Raises ``ValueError`` naming the parameter when a value is invalid."""
    return replace(_DEFAULTS["people"], **_grouped(values, PEOPLE_PARAMETERS)["people"])


def config_from_values(values: Mapping[str, Any], specs: Sequence[ParamSpec] = PARAMETERS):
    """:func:`configs_from_values` or :func:`people_config_from_values`, by the target of
    ``specs`` (the people node's specs feed "people")."""
    if any(s.target == "people" for s in specs):
        return people_config_from_values(values)
    return configs_from_values(values)


def startup_problems(values: Mapping[str, Any],
                     specs: Sequence[ParamSpec] = PARAMETERS) -> List[str]:
    """What is wrong with the parameter values a node starts with (params file and ``-p``).

    ``values``: parameter name -> value for the names given at start. Each problem names the
    parameter, the value and the accepted range or choices, in the words a rejected
    ``ros2 param set`` uses. Empty when the values can start the node.
    """
    by_name = _by_name(specs)
    problems = []
    known = {}
    for name, value in values.items():
        spec = by_name.get(name)
        if spec is None:
            continue  # parameters this node does not own (use_sim_time, the other node's)
        problem = check_value(spec, value)
        if problem:
            problems.append(problem)
        else:
            known[name] = value
    if not problems:
        try:
            config_from_values(known, specs)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def cli_parameter_values(argv: Sequence[str]) -> Dict[str, Tuple[str, Any]]:
    """The ``-p name:=value`` arguments of a ROS command line: name -> (text, parsed value).

    Only arguments inside ``--ros-args`` sections count; a ``node:`` prefix is dropped. The
    value is parsed as YAML, as rcl does.
    """
    found: Dict[str, Tuple[str, Any]] = {}
    in_ros = False
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg in ("-p", "--param") and i + 1 < len(args):
            name, sep, text = args[i + 1].partition(":=")
            if not sep:
                continue
            name = name.rsplit(":", 1)[-1]
            try:
                value = yaml.safe_load(text) if text else ""
            except yaml.YAMLError:
                value = text
            found[name] = (text, value)
    return found


def unapplied_cli_values(argv: Sequence[str], actual: Mapping[str, Any],
                         specs: Sequence[ParamSpec] = PARAMETERS) -> List[str]:
    """``-p`` values the node did not get (rcl drops a ``-p`` whose type differs from the
    params file's value for the same name, silently): one problem per such argument."""
    by_name = _by_name(specs)
    problems = []
    for name, (text, value) in cli_parameter_values(argv).items():
        spec = by_name.get(name)
        if spec is None or name not in actual:
            continue
        have = actual[name]
        same = value == have and type(value) is type(have)
        if isinstance(have, float) and isinstance(value, int) and not isinstance(value, bool):
            same = float(value) == have
        if same:
            continue
        why = check_value(spec, value) or f"{name} is {have!r}"
        problems.append(f"-p {name}:={text} was not applied ({why}); the node has "
                        f"{name} = {have!r}")
    return problems


class ParameterStartupError(ValueError):
    """Parameter values a node cannot start with (params file or ``-p``); one problem per
    parameter, each naming it, its value and the accepted range or choices."""

    def __init__(self, problems) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
