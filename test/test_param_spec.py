"""One parameter spec (``ros.param_spec``, no ROS): the docs tables are written from it, the
ranges are the ones the configs check, and the offline evaluation reads parameters through
it."""

from pathlib import Path

import pytest

from face3d_ros.core.config import CHOICES, LIMITS, EngineConfig, TrackerConfig
from face3d_ros.ros.param_spec import (NODE_LIMITS, PARAMETERS, PEOPLE_PARAMETERS, NodeConfig,
                                       PeopleConfig, check_value)
from face3d_ros.tools import param_table
from face3d_ros.tools.eval_input import EvalError, configs

DOC = Path(__file__).resolve().parents[1] / "docs" / "ros.md"


def test_docs_tables_are_the_spec():
    assert param_table.differences(DOC.read_text()) == []


def test_docs_check_fails_on_a_changed_row():
    text = DOC.read_text().replace("| `max_faces` | `64` |", "| `max_faces` | `16` |")
    assert param_table.differences(text), "a changed default must fail the check"


@pytest.mark.parametrize("spec", PARAMETERS + PEOPLE_PARAMETERS, ids=lambda s: s.name)
def test_ranges_are_the_ones_the_configs_check(spec):
    """Each range is written once: a value just outside it fails the spec's check and the
    config's own, with the same words."""
    config = {"engine": EngineConfig, "tracker": TrackerConfig, "node": NodeConfig,
              "people": PeopleConfig}[spec.target]
    table = {**LIMITS, **NODE_LIMITS}
    if spec.limits is None:
        assert spec.name not in table
        if spec.choices is not None:
            with pytest.raises(ValueError, match=spec.name):
                config(**{spec.name: "no-such-choice"})
            assert spec.choices == CHOICES.get(spec.name, spec.choices)
        return
    assert spec.limits == table[spec.name]
    lo, hi = spec.limits
    bad = hi + (1 if isinstance(spec.default, int) else 0.5 * (hi - lo) + 1.0)
    assert check_value(spec, bad) is not None
    with pytest.raises(ValueError, match=spec.name):
        config(**{spec.name: bad})


def test_offline_evaluation_reads_parameters_through_the_spec():
    cfg = configs({"min_face_px": 0, "max_image_side": 640, "reid_threshold": 0.02}, "cpu")
    assert cfg.engine.min_face_px == 0 and cfg.node.max_image_side == 640
    with pytest.raises(EvalError, match=r"max_faces must be in \[1, 256\], got 0"):
        configs({"max_faces": 0}, None)
    with pytest.raises(EvalError, match="unknown parameter.*no_such_name"):
        configs({"no_such_name": 1}, None)
