"""Relative multiplication energy of a per-layer multiplier choice."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

import hwlib
from errormodels.errors import AssignmentError
from hwlib.multiplier import Multiplier

SpecLike = str | Multiplier


def energy(assignment_or_specs: object, multiplications: Sequence[int] | None = None) -> float:
    """``sum_l c_l P(m_l) / sum_l c_l P(exact)``, with P relative to each family's exact.

    Args:
        assignment_or_specs: an :class:`~errormodels.assignment.Assignment`, a sequence of
            spec strings / multipliers (one per layer), or a mapping layer name -> spec.
        multiplications: c_l per layer; optional for an Assignment (it carries them).

    Returns:
        The relative energy, 1.0 for an all-exact network.
    """
    specs, counts = _specs_and_counts(assignment_or_specs, multiplications)
    c = np.asarray(counts, np.float64)
    power = np.array([hwlib.get(s).relative_power for s in specs], np.float64)
    return float((c * power).sum() / c.sum())


def power_source(specs: Sequence[SpecLike]) -> str:
    """Label of the power table(s) behind ``specs``: one label, or ``mixed: a; b``."""
    labels = list(dict.fromkeys(hwlib.get(s).power.label for s in specs))
    return labels[0] if len(labels) == 1 else "mixed: " + "; ".join(labels)


def _specs_and_counts(obj: object, multiplications: Sequence[int] | None
                      ) -> tuple[list[SpecLike], list[int]]:
    layers = getattr(obj, "layers", None)
    if layers is not None:
        specs: list[SpecLike] = [layer.multiplier for layer in layers]
        counts = [layer.multiplications for layer in layers] if multiplications is None \
            else list(multiplications)
    elif isinstance(obj, Mapping):
        specs = list(obj.values())
        counts = list(multiplications) if multiplications is not None else []
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        specs = list(obj)
        counts = list(multiplications) if multiplications is not None else []
    else:
        raise AssignmentError(f"energy: expected an Assignment, a sequence of specs or a mapping "
                              f"name -> spec, got {type(obj).__name__}")
    if not specs:
        raise AssignmentError("energy: expected at least one layer, got none")
    if len(counts) != len(specs):
        raise AssignmentError(f"energy: {len(specs)} layers but {len(counts)} multiplication "
                              f"counts")
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, (int, np.integer))
           or c < 0]
    if bad or sum(counts) <= 0:
        raise AssignmentError(f"energy: multiplications must be non-negative integers with a "
                              f"positive sum, got {list(counts)}")
    return specs, [int(c) for c in counts]
