"""Re-assign the multipliers of a network's approximable layers (the NSGA-II genome decoder)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from deploy.errors import AssignmentError
from deploy.ir import _Layer
from deploy.network import Network
from hwlib.assignment import Assignment, as_assignment


def with_multipliers(net: Network,
                     assignment: Assignment | Mapping[str, Any] | Sequence[Any]) -> Network:
    """A copy of ``net`` whose approximable layers use the given multipliers.

    Args:
        net: the network.
        assignment: an :class:`hwlib.Assignment` or ``{layer name: spec, Multiplier or
            blocks}`` naming every approximable layer exactly once, or a sequence of those in
            layer order (``len == len(net.layers)``).

    Raises:
        AssignmentError: unknown or missing layer names, a wrong count, a bad spec, groups
            that do not fit the layer's channels.
        IRError: the new multipliers break the IR (operand domain, int32 accumulator bound).
    """
    names = [n.name for n in net.layers]
    if isinstance(assignment, Sequence) and not isinstance(assignment, str):
        if len(assignment) != len(names):
            raise AssignmentError(
                f"assignment for network {net.name!r}: expected {len(names)} multipliers (one "
                f"per approximable layer {names}), got {len(assignment)}")
        asg = Assignment.from_mapping(dict(zip(names, assignment)))
    elif isinstance(assignment, (Assignment, Mapping)):
        asg = as_assignment(assignment)
    else:
        raise AssignmentError(f"assignment: expected an Assignment, a mapping or a sequence of "
                              f"spec strings, got {type(assignment).__name__}")
    asg.check_names(names, f"assignment for network {net.name!r}")
    specs = asg.canonical_specs()
    for la in asg.layers:
        w = net.node(la.name).weight  # type: ignore[attr-defined]
        la.check_shape(w.shape[0], w.shape[1])
    nodes = tuple(dataclasses.replace(n, multiplier=specs[n.name])
                  if isinstance(n, _Layer) and n.name in specs else n for n in net.nodes)
    return Network(nodes, name=net.name, schema_version=net.schema_version)
