"""Error-mean compensation of a model: each layer's expected error under its multiplier, as bias.

:func:`input_pmfs` measures every approximable layer's pooled input-code distribution (padding
taps included) on a few batches; :func:`compensate_` folds ``round(mu_c)`` (see
:mod:`errormodels.compensate`) into each layer's bias correction for its current multiplier and
integer weights. The correction is an integer on the accumulator grid, so the fake-quant model in
approximate mode, the exported integer network, the NumPy reference and the firmware all carry the
same bias and stay bit-exact with each other.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from agn.layers.model_ops import approx_layers
from errormodels.compensate import shifted_corrections

__all__ = ["compensate_", "input_pmfs"]


@torch.no_grad()
def input_pmfs(model: nn.Module, batches: Iterable[Any], num_batches: int
               ) -> dict[str, np.ndarray]:
    """Pooled input-code distribution (float64 (256,)) of every approximable layer over up to
    ``num_batches`` batches (inputs, or ``(inputs, labels)``), the model in its current mode
    (which must quantize). Every tap of every receptive field counts once, padding as the zero
    point."""
    from agn.stats import receptive_fields  # agn.stats imports errormodels only

    if num_batches < 1:
        raise ValueError(f"input_pmfs: num_batches must be >= 1, got {num_batches}")
    counts = {name: torch.zeros(256, dtype=torch.int64) for name, _ in approx_layers(model)}

    def hook(name: str):
        def run(module: nn.Module, args: tuple[Any, ...]) -> None:
            x_q, _, zp = module.integer_operands(args[0])
            fields = receptive_fields(module, x_q, zp)
            counts[name] += torch.bincount(fields.flatten(), minlength=256)
        return run

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in approx_layers(model)]
    was = model.training
    model.eval()
    try:
        seen = 0
        for batch in batches:
            model(batch[0] if isinstance(batch, (tuple, list)) else batch)
            seen += 1
            if seen >= num_batches:
                break
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    if seen == 0:
        raise ValueError("input_pmfs: the batch iterable was empty")
    return {name: (c / c.sum()).double().numpy() for name, c in counts.items()}


@torch.no_grad()
def compensate_(model: nn.Module, pmfs: Mapping[str, np.ndarray]) -> nn.Module:
    """Set every approximable layer's bias correction (in place) to ``round(mu_c)`` of its current
    multiplier and integer weights under its input distribution ``pmfs[name]`` (exact
    multipliers get none).

    Raises:
        KeyError: a layer without a distribution in ``pmfs``.
    """
    for name, layer in approx_layers(model):
        if name not in pmfs:
            raise KeyError(f"compensate_: no input distribution for layer {name!r}; have "
                           f"{sorted(pmfs)}")
        w = layer.integer_operands(torch.zeros(1))[1].numpy()
        # the circuit may see the codes shifted (operand rounding)
        corr = shifted_corrections(w, pmfs[name], layer.spec, layer.x_offset,
                                   layer.input_quant.int_range()[1])
        layer.set_bias_correction(torch.from_numpy(corr) if np.any(corr) else None)
    return model

