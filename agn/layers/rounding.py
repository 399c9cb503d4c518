"""Multiplier-aware operand rounding: feed each circuit the operand values it keeps, rounded.

A circuit that ignores the ``k`` low bits of the activation truncates it; adding ``2^(k-1)`` to
the codes first (clipped at the quantizer's top) makes that truncation a rounding. The offset is
a property of a tensor, so it is set per input quantizer, for the quantizers whose every
approximable consumer ignores at least ``k`` bits (the smallest ``k`` among them; an exact or
MARLIN consumer keeps it at 0); the model's input quantizer keeps its codes. Weights are
quantized onto multiples of ``2^k`` for a circuit ignoring ``k`` weight bits. At export the
offset moves into the producing requantisation's zero point and clip (``zp + offset``,
``lo + offset``), so the integer network, the reference and the firmware compute exactly what
the torch engine does, at no run-time cost.
"""
from __future__ import annotations

from torch import nn

from agn.layers.model_ops import approx_layers
from errormodels.rounding import IgnoredBits, ignored_bits

__all__ = ["round_operands_"]


def round_operands_(model: nn.Module, activations: bool = True, weights: bool = True
                    ) -> dict[str, tuple[int, int]]:
    """Set every approximable layer's operand rounding (in place) for its current multiplier.

    Call it after the multipliers are assigned (a later change of multiplier resets it). A layer
    holding blocks (several multipliers) keeps its operands, and its input quantizer too.

    Returns:
        layer name -> ``(x_offset, w_step)`` as set.
    """
    layers = approx_layers(model)
    bits = {name: ignored_bits(layer.spec) if isinstance(layer.spec, str) else IgnoredBits()
            for name, layer in layers}  # a layer holding blocks is not rounded
    kx: dict[int, int] = {}
    for name, layer in layers:
        q = id(layer.input_quant)
        kx[q] = min(kx.get(q, 8), bits[name].x)
    no_offset = id(getattr(model, "quant_in", None))
    out = {}
    for name, layer in layers:
        q = id(layer.input_quant)
        k = kx[q] if activations and q != no_offset else 0
        x_off = IgnoredBits(x=k).x_offset
        w_step = bits[name].w_step if weights else 1
        layer.set_operand_rounding(x_off, w_step)
        out[name] = (x_off, w_step)
    return out
