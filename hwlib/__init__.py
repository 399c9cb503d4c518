"""hwlib: bit-exact models of exact and approximate 8-bit multipliers, with their power."""
from hwlib import families as _families  # noqa: F401  (registers the built-in families)
from hwlib import marlin
from hwlib.domain import INT8, INT9, UINT7, UINT8, Domain
from hwlib.errors import DomainError, SpecError, TableError
from hwlib.multiplier import ErrorFactors, Exact, Multiplier, TableMultiplier, error_metrics
from hwlib.power import Power
from hwlib.registry import catalog, expand, families, get, register

__all__ = [
    "Domain", "DomainError", "ErrorFactors", "Exact", "INT8", "INT9", "Multiplier", "Power",
    "SpecError", "TableError", "TableMultiplier", "UINT7", "UINT8", "catalog", "error_metrics",
    "expand", "families", "get", "marlin", "register",
]
