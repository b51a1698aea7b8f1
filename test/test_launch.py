"""The launch file, params file and RViz config, and their agreement with the nodes.

``launch``/``launch_ros`` are not on PyPI, so where they are missing the launch file is checked
statically: it compiles, the executables, params file and RViz config it names exist, and the
params file (parsed by rclpy's own parser) holds exactly the parameters the two nodes declare
(the perception node's, then the people node's own), with the nodes' defaults. With
``launch_ros`` installed the launch description is also built.
"""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy", reason="run scripts/setup.sh, then source scripts/env.sh")
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rclpy.parameter import Parameter, parameter_dict_from_yaml_file  # noqa: E402

from face3d_ros.ros.param_spec import (PARAMETERS, PEOPLE_PARAMETERS, PEOPLE_SPECS,  # noqa: E402
                                       SHARED_NAMES, SPECS, configs_from_values,
                                       people_config_from_values)
from face3d_ros.ros.params import descriptor, validate_update  # noqa: E402

#: Every parameter of the params file, in its order: the perception node's, then the people
#: node's own (the shared names are in the perception node's part).
ALL_SPECS = PARAMETERS + tuple(s for s in PEOPLE_PARAMETERS if s.name not in SPECS)

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "face3d.launch.py"
PARAMS = ROOT / "config" / "face3d.yaml"
RVIZ = ROOT / "rviz" / "face3d.rviz"


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))


def _string_kwargs(tree: ast.Module, name: str) -> set:
    """Constant string values given to keyword ``name`` anywhere in the launch file."""
    return {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            for kw in node.keywords
            if kw.arg == name and isinstance(kw.value, ast.Constant)}


def test_launch_file_compiles_and_names_real_things():
    """It compiles; the executables are console scripts; config and RViz files exist."""
    tree = _launch_tree()
    compile(tree, str(LAUNCH), "exec")
    assert {"face3d_node", "face3d_people"} <= _string_kwargs(tree, "executable")
    setup_py = (ROOT / "setup.py").read_text()
    assert "face3d_node = face3d_ros.ros.node:main" in setup_py
    assert "face3d_people = face3d_ros.ros.people_node:main" in setup_py
    text = LAUNCH.read_text()
    assert '"config", "face3d.yaml"' in text and PARAMS.is_file()
    assert '"rviz", "face3d.rviz"' in text and RVIZ.is_file()
    assert _string_kwargs(tree, "name") >= {"face3d", "face3d_people"}
    assert {"camera", "image", "camera_info", "params_file", "device", "use_rviz",
            "people"} <= {
        node.args[0].value for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}


def test_params_file_parses_with_rclpy_and_matches_the_node():
    """rclpy's parser reads the file; its names, types and values are the declared defaults of
    the two nodes."""
    parsed = parameter_dict_from_yaml_file(str(PARAMS), use_wildcard=True)
    names = {s.name for s in ALL_SPECS}
    assert set(parsed) == names, (
        f"only in yaml: {set(parsed) - names}, only in the nodes: {names - set(parsed)}")
    raw = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    assert list(raw) == [s.name for s in ALL_SPECS], "same order as the specs"
    for spec in ALL_SPECS:
        value = raw[spec.name]
        assert type(value) is type(spec.default) and value == spec.default, (
            f"{spec.name}: yaml {value!r} != node default {spec.default!r}")
        ptype = parsed[spec.name].value.type
        assert ptype in (descriptor(spec).type, ParameterType.PARAMETER_NOT_SET), spec.name


def test_shared_parameters_mean_the_same_for_both_nodes():
    """The names both nodes declare have one description, default, range and choices; the
    identity parameters belong to the people node only."""
    assert set(SPECS) & set(PEOPLE_SPECS) == set(SHARED_NAMES)
    for name in SHARED_NAMES:
        a, b = SPECS[name], PEOPLE_SPECS[name]
        assert (a.description, a.default, a.limits, a.choices, a.read_only) == (
            b.description, b.default, b.limits, b.choices, b.read_only), name
    identity = {"enrollment_dir", "reidentify", "reid_threshold", "reid_margin",
                "reid_min_frames", "enrolled_frame_id"}
    assert identity <= set(PEOPLE_SPECS) and not identity & set(SPECS)


def test_every_parameter_has_a_descriptor_with_range_or_choices():
    for spec in ALL_SPECS + PEOPLE_PARAMETERS:
        desc = descriptor(spec)
        assert desc.description and desc.name == spec.name
        default = spec.default
        if isinstance(default, float):
            assert len(desc.floating_point_range) == 1, spec.name
            r = desc.floating_point_range[0]
            assert r.from_value <= default <= r.to_value
        elif isinstance(default, int) and not isinstance(default, bool):
            assert len(desc.integer_range) == 1, spec.name
        if spec.name in ("device", "model_dir", "detector", "input_reliability", "autostart"):
            assert desc.read_only, spec.name


def test_configs_from_the_params_file_equal_the_dataclass_defaults():
    raw = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    cfg = configs_from_values({k: v for k, v in raw.items() if k in SPECS})
    assert cfg == configs_from_values({})
    assert cfg.engine.model_dir is None
    people = people_config_from_values({k: v for k, v in raw.items() if k in PEOPLE_SPECS})
    assert people == people_config_from_values({})
    with pytest.raises(ValueError, match="unknown parameter 'reidentify'"):
        configs_from_values({"reidentify": True})


def test_updates_are_validated_with_reasons():
    current = {s.name: s.default for s in PARAMETERS}
    result, cfg = validate_update(current, [Parameter("min_detection_score", value=2.0)])
    assert not result.successful and "min_detection_score must be in [0.0, 1.0]" in result.reason
    result, _ = validate_update(current, [Parameter("detector", value="far")])
    assert not result.successful and "read-only" in result.reason
    result, _ = validate_update(current, [Parameter("max_faces", value="many")])
    assert not result.successful and "max_faces must be an integer" in result.reason
    result, cfg = validate_update(current, [Parameter("min_detection_score", value=0.7),
                                            Parameter("detect_every_n", value=3)])
    assert result.successful
    assert cfg.engine.min_detection_score == 0.7 and cfg.tracker.detect_every_n == 3
    people = {s.name: s.default for s in PEOPLE_PARAMETERS}
    result, _ = validate_update(people, [Parameter("reid_threshold", value=0.5)],
                                PEOPLE_PARAMETERS)
    assert not result.successful and "reid_threshold must be in [0.001, 0.2]" in result.reason
    result, _ = validate_update(people, [Parameter("enrollment_dir", value="/x")],
                                PEOPLE_PARAMETERS)
    assert not result.successful and "read-only" in result.reason
    result, cfg = validate_update(people, [Parameter("reid_min_frames", value=5)],
                                  PEOPLE_PARAMETERS)
    assert result.successful and cfg.reid_min_frames == 5


def test_rviz_config_shows_the_outputs():
    rviz = yaml.safe_load(RVIZ.read_text())
    manager = rviz["Visualization Manager"]
    topics = {d["Class"]: d.get("Topic", {}).get("Value") for d in manager["Displays"]}
    assert topics["rviz_default_plugins/Image"] == "/debug_image"
    assert topics["rviz_default_plugins/PoseArray"] == "/gaze"
    markers = {d["Topic"]["Value"]: d for d in manager["Displays"]
               if d["Class"] == "rviz_default_plugins/MarkerArray"}
    assert set(markers) == {"/face_markers", "/enrolled_faces"}
    # The gallery is latched, in a frame of its own (off until that frame is placed).
    assert markers["/enrolled_faces"]["Topic"]["Durability Policy"] == "Transient Local"
    assert manager["Global Options"]["Fixed Frame"] == "camera_optical_frame"


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (not on PyPI; present with a system "
                           "ROS 2 install)")
def test_launch_description_builds():
    """With launch_ros installed, the description builds with its node and arguments."""
    spec = importlib.util.spec_from_file_location("face3d_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert {"camera", "image", "camera_info", "params_file", "device", "use_rviz",
            "people"} <= names


def test_launch_switches_override_the_params_file_only_when_given():
    """``device``, ``hri`` and ``publish_tf`` left empty keep the params file's values; the
    people node gets the params file and autostart false only."""
    from face3d_ros.ros.launch_helpers import (launch_switch, node_parameters,
                                               people_parameters)

    assert people_parameters("p.yaml") == ["p.yaml", {"autostart": False}]
    assert launch_switch("people", " False") is False and launch_switch("people", "on")
    with pytest.raises(ValueError, match="people must be true or false"):
        launch_switch("people", "")

    assert node_parameters("p.yaml") == ["p.yaml", {"autostart": False}]
    assert node_parameters("p.yaml", "cuda", " True", "off") == [
        "p.yaml", {"autostart": False, "device": "cuda", "hri": True, "publish_tf": False}]
    with pytest.raises(ValueError, match="hri must be true or false, got 'maybe'"):
        node_parameters("p.yaml", hri="maybe")
    declared = {node.args[0].value for node in ast.walk(_launch_tree())
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
                "DeclareLaunchArgument" and node.args and isinstance(node.args[0], ast.Constant)}
    assert {"hri", "publish_tf", "device"} <= declared
