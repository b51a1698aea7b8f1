"""Parameters of the face3d nodes: declaration with descriptors, validation, typed configs.

Two nodes, one spec style. Every parameter of the perception node ``face3d`` is described once
in :data:`PARAMETERS`, every parameter of the people node ``face3d_people`` in
:data:`PEOPLE_PARAMETERS` (name, description, range or choices, whether it may change while the
node runs, and which config it feeds). Defaults of the engine and tracker parameters are the
defaults of :class:`EngineConfig` and :class:`TrackerConfig`; those of the perception node's own
parameters the defaults of :class:`NodeConfig`, those of the people node the defaults of
:class:`PeopleConfig`. A few names (``autostart``, ``use_compressed``, ``input_reliability``)
belong to both nodes with one meaning, one description and one default.

The shipped ``config/face3d.yaml`` holds exactly these values in one ``/**`` section (each node
takes the names it declares; a test checks that file and specs agree), so it is the one file a
user edits. The functions take the node's spec list (``specs``, default :data:`PARAMETERS`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.parameter import Parameter

from face3d_ros.core.config import EngineConfig, TrackerConfig, check_range
from face3d_ros.core.people.identity import REID_MARGIN, REID_MIN_FRAMES, REID_THRESHOLD

_RELIABILITIES = ("best_effort", "reliable")


def _check_reliability(value: str) -> None:
    if value not in _RELIABILITIES:
        raise ValueError(f"input_reliability must be 'best_effort' or 'reliable', got {value!r}")


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
        _check_reliability(self.input_reliability)
        check_range("marker_lifetime_s", self.marker_lifetime_s, 0.0, 60.0)
        check_range("no_image_warn_s", self.no_image_warn_s, 0.5, 3600.0)
        check_range("diagnostics_period_s", self.diagnostics_period_s, 0.1, 60.0)
        check_range("max_image_side", self.max_image_side, 160, 16384)


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
        _check_reliability(self.input_reliability)
        check_range("reid_threshold", self.reid_threshold, 0.001, 0.2)
        check_range("reid_margin", self.reid_margin, 0.0, 0.1)
        check_range("reid_min_frames", self.reid_min_frames, 1, 100)
        if not self.enrolled_frame_id:
            raise ValueError("enrolled_frame_id must not be empty (e.g. face3d_enrolled)")


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter.

    target: "engine", "tracker", "node" (the perception node's configs) or "people" (the
    people node's): the config dataclass the value goes to.
    limits: (lo, hi) inclusive range for numbers, or None. choices: allowed strings, or None.
    read_only: True when the value cannot change while the node runs (set it in the params
    file or on the command line instead).
    """

    name: str
    target: str
    description: str
    limits: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None
    read_only: bool = False

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
              "'litert' (CPU only).", choices=("auto", "torch", "litert"), read_only=True),
    ParamSpec("threads", "engine",
              "CPU threads of the networks (0: one per physical core).", limits=(0, 256),
              read_only=True),
    ParamSpec("model_dir", "engine",
              "Folder with the verified model files; empty uses $FACE3D_MODEL_DIR or "
              "~/.cache/face3d/models (fill it with face3d-fetch-models).", read_only=True),
    ParamSpec("detector", "engine",
              "Face detector: 'short' (faces within ~2 m), 'full' (up to ~5 m) or 'both'.",
              choices=("short", "full", "both"), read_only=True),
    ParamSpec("refine_iris", "engine",
              "Run the iris network (needed for gaze and for metric scale from the iris).",
              read_only=True),
    ParamSpec("mesh_flip", "engine",
              "Average the mesh network over each face crop and its mirror image (its left/right "
              "bias cancels; one more mesh forward per face)."),
    ParamSpec("min_detection_score", "engine", "Detector score threshold.", limits=(0.0, 1.0)),
    ParamSpec("nms_iou", "engine", "IoU above which detections are merged.", limits=(0.0, 1.0)),
    ParamSpec("max_faces", "engine",
              "At most this many faces per image; more are counted (diagnostics) and warned "
              "about.", limits=(1, 256)),
    ParamSpec("min_face_px", "engine",
              "Smallest face to find, px: the detector also scans overlapping tiles sized from "
              "it and the image size (0: the whole image only).", limits=(0, 4096)),
    ParamSpec("min_presence", "engine",
              "Faces whose mesh presence score is below this are dropped.", limits=(0.0, 1.0)),
    ParamSpec("iris_diameter_m", "engine",
              "Human iris diameter used for metric scale, metres.", limits=(0.005, 0.02)),
    ParamSpec("default_hfov_deg", "engine",
              "Horizontal field of view assumed without a valid camera_info, degrees.",
              limits=(10.0, 170.0)),
    # Tracker.
    ParamSpec("detect_every_n", "tracker",
              "Run the detector at least every N frames while faces track.", limits=(1, 1000)),
    ParamSpec("max_missed", "tracker",
              "Frames a track survives without a match before it is dropped.", limits=(0, 1000)),
    ParamSpec("min_hits", "tracker",
              "Consecutive matches before a new track gets its id.", limits=(1, 100)),
    ParamSpec("match_iou", "tracker",
              "Least box IoU for a detection to continue a track.", limits=(0.0, 1.0)),
    ParamSpec("min_appearance", "tracker",
              "Least correlation of a track's aligned face thumbnails between frames; below it "
              "the face is another person and gets a new track (0 disables).",
              limits=(0.0, 1.0)),
    ParamSpec("smoothing", "tracker", "One-Euro smoothing of landmarks, pose and gaze."),
    ParamSpec("min_cutoff_hz", "tracker", "One-Euro minimum cutoff frequency, Hz.",
              limits=(1e-3, 100.0)),
    ParamSpec("beta", "tracker", "One-Euro speed coefficient.", limits=(0.0, 10.0)),
    ParamSpec("d_cutoff_hz", "tracker", "One-Euro derivative cutoff frequency, Hz.",
              limits=(1e-3, 100.0)),
    # Node.
    ParamSpec("autostart", "node",
              "Configure and activate at start (false when a lifecycle manager or launch "
              "does it).", read_only=True),
    ParamSpec("use_compressed", "node",
              "Subscribe to image/compressed (CompressedImage) instead of image.",
              read_only=True),
    ParamSpec("input_reliability", "node",
              "Reliability of the image and camera_info subscriptions: 'best_effort' "
              "(matches any camera) or 'reliable'.",
              choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("use_camera_info", "node",
              "Take intrinsics from camera_info; false always assumes default_hfov_deg."),
    ParamSpec("publish_markers", "node",
              "Publish RViz markers on face_markers (computed only while subscribed)."),
    ParamSpec("publish_gaze", "node", "Publish combined gaze rays as a PoseArray on gaze."),
    ParamSpec("publish_debug_image", "node",
              "Publish the overlay on debug_image (computed only while subscribed)."),
    ParamSpec("marker_lifetime_s", "node", "Lifetime of RViz markers, seconds (0 = forever).",
              limits=(0.0, 60.0)),
    ParamSpec("no_image_warn_s", "node",
              "Warn when no image arrived for this many seconds.", limits=(0.5, 3600.0)),
    ParamSpec("diagnostics_period_s", "node", "Period of /diagnostics messages, seconds.",
              limits=(0.1, 60.0), read_only=True),
    ParamSpec("max_image_side", "node",
              "Frames whose longer side exceeds this many pixels are downscaled to it for "
              "processing (bounded memory and time); results are in the original pixels.",
              limits=(160, 16384)),
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
              "Largest identity-shape distance of a match (fraction of the face size).",
              limits=(0.001, 0.2)),
    ParamSpec("reid_margin", "people",
              "Least gap between the second-best and the best distance of a match.",
              limits=(0.0, 0.1)),
    ParamSpec("reid_min_frames", "people",
              "Frames a track must have before it can be recognised.", limits=(1, 100)),
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


_PY_TO_ROS = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of ``spec`` (type, description, range, read_only)."""
    default = spec.default
    desc = ParameterDescriptor(
        name=spec.name,
        type=_PY_TO_ROS[type(default)],
        description=spec.description,
        read_only=spec.read_only,
    )
    if spec.choices:
        desc.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.limits is not None:
        lo, hi = spec.limits
        if isinstance(default, float):
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
        else:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return desc


def declare_parameters(node, specs: Sequence[ParamSpec] = PARAMETERS) -> None:
    """Declare every parameter of ``specs`` on ``node`` with its descriptor."""
    node.declare_parameters(
        "", [(s.name, s.default, descriptor(s)) for s in specs]
    )


def check_value(spec: ParamSpec, value: Any) -> Optional[str]:
    """None when ``value`` is acceptable for ``spec``, else the reason it is not."""
    expected = type(spec.default)
    ok_type = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        ok_type = True
    if not ok_type:
        return f"{spec.name} must be {_TYPE_WORDS[expected]}, got {value!r}"
    if spec.limits is not None:
        lo, hi = spec.limits
        if not (lo <= value <= hi):
            return f"{spec.name} must be in [{lo}, {hi}], got {value!r}"
    if spec.choices is not None and value not in spec.choices:
        return f"{spec.name} must be one of {', '.join(spec.choices)}; got {value!r}"
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
    """:func:`configs_from_values` or :func:`people_config_from_values`, by ``specs``."""
    if specs is PEOPLE_PARAMETERS:
        return people_config_from_values(values)
    return configs_from_values(values)


def read_configs(node, specs: Sequence[ParamSpec] = PARAMETERS):
    """The typed config(s) of ``specs`` from the node's current parameter values."""
    return config_from_values(
        {s.name: node.get_parameter(s.name).value for s in specs}, specs)


def validate_update(
    current: Mapping[str, Any], params: Sequence[Parameter],
    specs: Sequence[ParamSpec] = PARAMETERS,
) -> Tuple[SetParametersResult, Optional[Any]]:
    """Check a set-parameters request against the specs and the configs' own rules.

    ``current``: the node's parameter values before the request. Returns the result to give
    back to rclpy (``successful=False`` with the reason when rejected) and, when accepted, the
    config(s) with the new values applied (:class:`Face3DConfig` for :data:`PARAMETERS`,
    :class:`PeopleConfig` for :data:`PEOPLE_PARAMETERS`).
    """
    by_name = _by_name(specs)
    merged = dict(current)
    for p in params:
        spec = by_name.get(p.name)
        if spec is None:
            continue  # parameters this module does not own (e.g. use_sim_time)
        if spec.read_only and p.value != current.get(p.name):
            return SetParametersResult(
                successful=False,
                reason=f"{p.name} is read-only while the node runs; set it in the params file",
            ), None
        problem = check_value(spec, p.value)
        if problem:
            return SetParametersResult(successful=False, reason=problem), None
        merged[p.name] = p.value
    try:
        cfg = config_from_values({k: v for k, v in merged.items() if k in by_name}, specs)
    except ValueError as exc:
        return SetParametersResult(successful=False, reason=str(exc)), None
    return SetParametersResult(successful=True), cfg


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


class SpecParameters:
    """Mixin of a node whose parameters are declared from a spec list (``PARAM_SPECS``,
    default :data:`PARAMETERS`): every set-parameters request is checked against the specs
    first, and a rejection is logged.

    rclpy rejects a value outside a descriptor's range, or a read-only change, without
    calling the set-parameters callback, so such a rejection was neither logged nor worded as
    documented. Put it before the rclpy node class: ``class N(SpecParameters, LifecycleNode)``.
    """

    PARAM_SPECS: Sequence[ParamSpec] = PARAMETERS

    def _prevalidate(self, params) -> Optional[SetParametersResult]:
        """Our own check before rclpy's; None when the request may proceed."""
        by_name = _by_name(self.PARAM_SPECS)
        ours = [p for p in params if p.name in by_name]
        if not ours:
            return None
        current = {s.name: self.get_parameter(s.name).value  # type: ignore[attr-defined]
                   for s in self.PARAM_SPECS}
        result, _ = validate_update(current, ours, self.PARAM_SPECS)
        if result.successful:
            return None
        self.get_logger().warning(  # type: ignore[attr-defined]
            f"Rejected parameter change: {result.reason}")
        return result

    def set_parameters(self, parameter_list):
        """rclpy's ``set_parameters``, each value first checked and a rejection logged."""
        results = []
        for param in parameter_list:
            rejected = self._prevalidate([param])
            results.append(rejected if rejected is not None
                           else super().set_parameters([param])[0])  # type: ignore[misc]
        return results

    def set_parameters_atomically(self, parameter_list):
        """rclpy's ``set_parameters_atomically`` (what ``ros2 param set`` calls), the values
        first checked and a rejection logged."""
        rejected = self._prevalidate(parameter_list)
        if rejected is not None:
            return rejected
        return super().set_parameters_atomically(parameter_list)  # type: ignore[misc]
