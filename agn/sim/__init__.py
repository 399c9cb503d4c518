"""Bit-exact simulation of approximate multipliers in conv2d and linear layers (the hot path).

``approx_conv2d`` / ``approx_linear`` return the exact integer accumulators ``sum m(x, w)`` as
int32 (int64 when the proven bound reaches 2^31); ``plan`` / ``describe`` say which path runs
(exact, structured, factorised or gather), on which kernel (one uint8 x int8 oneDNN convolution,
float32 or float64, each used only where a bound proves it exact) and why; ``selftest`` is the
start-up check of the oneDNN kernel; ``reference_conv2d`` / ``reference_linear`` are the slow
table-lookup references the tests compare against.
"""
from agn.sim.engine import approx_conv2d, approx_linear, clear_cache, describe
from agn.sim.factors import MAX_FACTOR_RANK, Terms, factorise_table, terms_for
from agn.sim.onednn import SelfTest, selftest
from agn.sim.operands import ConvGeometry, OperandError
from agn.sim.plan import KERNELS, PATHS, Plan, UnsafePathError, plan
from agn.sim.reference import reference_conv2d, reference_linear

__all__ = [
    "ConvGeometry", "KERNELS", "MAX_FACTOR_RANK", "OperandError", "PATHS", "Plan", "SelfTest",
    "Terms", "UnsafePathError", "approx_conv2d", "approx_linear", "clear_cache", "describe",
    "factorise_table", "plan", "reference_conv2d", "reference_linear", "selftest", "terms_for",
]
