"""deploy: integer network IR, bit-exact NumPy reference, PULP C emitter and host validation."""
from deploy.assign import load_assignment, with_multipliers
from deploy.errors import AssignmentError, BuildError, IRError
from deploy.ir import (
    Add, AvgPool, Conv, Flatten, GlobalAvgPool, Input, Linear, MaxPool, Node, Requant, Requantize,
)
from deploy.network import SCHEMA_VERSION, Network, TensorInfo
from deploy.reference import run
from deploy.serialize import load, save

__all__ = [
    "Add", "AssignmentError", "AvgPool", "BuildError", "Conv", "Flatten", "GlobalAvgPool",
    "IRError", "Input", "Linear", "MaxPool", "Network", "Node", "Requant", "Requantize",
    "SCHEMA_VERSION", "TensorInfo", "load", "load_assignment", "run", "save", "with_multipliers",
]
