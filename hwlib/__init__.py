"""hwlib: bit-exact models of exact and approximate 8-bit multipliers, with their power.

``hwlib.get(spec)`` returns one multiplier, ``hwlib.catalog(spec)`` expands wildcards and comma
lists; :mod:`hwlib.families` documents every spec form. ``hwlib.Catalog`` is a catalog as the
other packages use it (exact member, power order, energy), ``hwlib.Assignment`` the per-layer
multiplier assignment and its versioned file (:mod:`hwlib.assignment`).
"""
from hwlib import anonymous, marlin
from hwlib import families as _families  # noqa: F401  (registers the built-in families)
from hwlib.assignment import (
                              ASSIGNMENT_FILE,
                              Assignment,
                              LayerAssignment,
                              as_assignment,
                              check_names,
                              read_assignment,
                              read_assignments,
                              write_assignment,
                              write_assignments,
)
from hwlib.bam import Bam
from hwlib.catalogs import Catalog, activation_range, power_label
from hwlib.cmodel import CModelError
from hwlib.domain import INT8, INT9, UINT7, UINT8, Domain
from hwlib.drum import Drum
from hwlib.errors import AssignmentError, DomainError, SpecError, TableError
from hwlib.logmul import Mitchell, Roba
from hwlib.multiplier import (
                              ErrorFactors,
                              Exact,
                              Multiplier,
                              TableMultiplier,
                              error_metrics,
                              error_metrics_batch,
)
from hwlib.perforation import Perforation
from hwlib.power import Power, partial_product_proxy
from hwlib.pparray import PartialProductArray
from hwlib.registry import catalog, expand, families, get, register
from hwlib.roup import Roup
from hwlib.signmag import SignMagnitude
from hwlib.tm import OperandTruncation
from hwlib.truncation import ColumnTruncation

__all__ = [
    "ASSIGNMENT_FILE", "Assignment", "AssignmentError", "Catalog", "LayerAssignment",
    "activation_range", "as_assignment", "check_names", "power_label", "read_assignment",
    "read_assignments", "write_assignment", "write_assignments",
    "Bam", "CModelError", "ColumnTruncation", "Domain", "DomainError", "Drum", "ErrorFactors",
    "Exact", "INT8", "INT9", "Mitchell", "Multiplier", "OperandTruncation", "PartialProductArray",
    "Perforation", "Power", "Roba", "Roup", "SignMagnitude", "SpecError", "TableError",
    "TableMultiplier", "UINT7", "UINT8", "catalog", "error_metrics", "error_metrics_batch",
    "anonymous", "expand", "families", "get", "marlin", "partial_product_proxy", "register",
]
