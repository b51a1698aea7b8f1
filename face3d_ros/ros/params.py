"""The parameter spec (``ros.param_spec``) on rclpy nodes: descriptors, declaration, the
typed configs of a running node and the check of every set-parameters request.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Tuple

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy.parameter import Parameter

from face3d_ros.ros.param_spec import (PARAMETERS, ParamSpec, _by_name, check_value,
                                       config_from_values)

_PY_TO_ROS = {
    bool: ParameterType.PARAMETER_BOOL,
    int: ParameterType.PARAMETER_INTEGER,
    float: ParameterType.PARAMETER_DOUBLE,
    str: ParameterType.PARAMETER_STRING,
}


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
