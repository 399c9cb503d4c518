"""deploy: integer network IR, bit-exact NumPy reference, PULP C emitter and host validation.

    net = deploy.load("runs/x")                            # network.json + network.npz
    net = deploy.with_multipliers(net, {"conv1": "marlin:17", ...})
    xq = deploy.encode_inputs(net, images)                 # float images -> uint8 input codes
    outs = deploy.run(net, xq)                             # every node's integers
    report = deploy.validate(net, x, "runs/x")             # firmware/ + validation.json
    deploy.rv32.check_target(net, report.firmware, build)  # CSR words in the rv32 disassembly

Seeded test networks (LeNet-5, ResNet-8, random graphs) live in :mod:`deploy.zoo`.
"""
from deploy import cost, memplan, target, tiling
from deploy.assign import with_multipliers
from deploy.backend import Backend
from deploy.emit_pulp import EmittedLayer, Firmware, emit
from deploy.encode import encode_inputs
from deploy.errors import AssignmentError, BackendError, BuildError, IRError
from deploy.ir import (
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Input,
    Linear,
    MaxPool,
    Node,
    Requant,
    Requantize,
)
from deploy.network import SCHEMA_VERSION, Network, TensorInfo
from deploy.reference import run
from deploy.serialize import load, save
from deploy.target import Target, default_target
from deploy.validate import LayerReport, ValidationReport, validate, validate_many
from hwlib.assignment import read_assignment

__all__ = [
    "Add", "AssignmentError", "AvgPool", "Backend", "BackendError", "BuildError", "Conv",
    "EmittedLayer", "Firmware", "Flatten", "GlobalAvgPool", "IRError", "Input", "LayerReport",
    "Linear", "MaxPool", "Network", "Node", "Requant", "Requantize", "SCHEMA_VERSION", "Target",
    "TensorInfo", "ValidationReport", "default_target", "emit", "encode_inputs", "load",
    "read_assignment", "run", "save", "target", "validate", "validate_many", "with_multipliers",
    "cost", "memplan", "tiling",
]
