"""Exceptions raised by deploy: every message names the bad value and what was expected."""
from hwlib.errors import AssignmentError  # the one assignment error class, shared with hwlib

__all__ = ["AssignmentError", "BuildError", "IRError", "PlanError"]


class IRError(ValueError):
    """An integer network (or one of its nodes) that breaks the IR's rules."""


class BuildError(RuntimeError):
    """A generated C program that failed to compile or run (the compiler output is attached)."""


class BackendError(IRError):
    """A backend (NumPy reference, torch executor, C emitter) with no implementation for a node
    type."""


class PlanError(IRError):
    """A memory or tiling plan that breaks its own invariants."""
