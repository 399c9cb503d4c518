"""Bit-exact NumPy reference of the integer semantics, one PULP-NN kernel per module."""
from deploy.reference.run import run

__all__ = ["run"]
