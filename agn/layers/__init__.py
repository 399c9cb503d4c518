"""Approximable layers (float / fake-quant / noise / approximate) and whole-model operations."""
from agn.layers.approx import ApproxConv2d, ApproxLinear, LayerError, is_approximable
from agn.layers.compensation import compensate_, input_pmfs
from agn.layers.mode import Mode
from agn.layers.model_ops import (
                                  AssignmentError,
                                  approx_layers,
                                  approximate_,
                                  calibrate,
                                  fold_bn,
                                  noise_penalty,
                                  reset_sigmas,
                                  restrict_activations_,
                                  set_calibration,
                                  set_mode,
                                  set_observe,
                                  sigma_groups,
                                  sigma_logs,
                                  sigma_table,
)
from agn.layers.rounding import round_operands_

__all__ = [
    "ApproxConv2d", "ApproxLinear", "AssignmentError", "LayerError", "Mode", "approx_layers",
    "approximate_", "calibrate", "compensate_", "fold_bn", "input_pmfs", "is_approximable",
    "noise_penalty", "reset_sigmas", "round_operands_",
    "restrict_activations_", "set_calibration", "set_mode", "set_observe", "sigma_groups",
    "sigma_logs", "sigma_table",
]
