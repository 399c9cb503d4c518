"""Whole-model operations: list layers, switch modes, assign multipliers, calibrate, fold BN."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from agn.layers.approx import ApproxConv2d, ApproxLinear, is_approximable
from agn.layers.mode import Mode
from agn.quant import CALIBRATIONS, ActQuant
from hwlib.assignment import AssignmentLike, as_assignment
from hwlib.catalogs import Catalog, activation_range
from hwlib.errors import AssignmentError

__all__ = ["AssignmentError", "approx_layers", "approximate_", "calibrate", "fold_bn",
           "noise_penalty", "reset_sigmas", "restrict_activations_", "set_calibration", "set_mode",
           "set_observe", "sigma_table"]


def approx_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` for every approximable layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if is_approximable(m)]


def _quantizers(model: nn.Module) -> list[ActQuant]:
    seen: dict[int, ActQuant] = {}
    for m in model.modules():
        if isinstance(m, ActQuant):
            seen[id(m)] = m
    for _, layer in approx_layers(model):
        seen[id(layer.input_quant)] = layer.input_quant
    return list(seen.values())


def set_mode(model: nn.Module, mode: Mode | str) -> nn.Module:
    """Put every approximable layer in ``mode``; quantizers fake-quantize unless it is FLOAT."""
    m = Mode.parse(mode)
    for q in _quantizers(model):
        if m is not Mode.FLOAT:
            q.qparams()  # raises QuantError when the observer never saw data
        q.enabled.fill_(m is not Mode.FLOAT)
    for _, layer in approx_layers(model):
        layer.set_mode(m)
    return model


def set_calibration(model: nn.Module, method: str, percentile: float = 99.99) -> nn.Module:
    """Choose every activation observer's range estimator (``max``, ``percentile``, ``mse``,
    ``learned``; see :func:`agn.quant.clip_range`). ``learned`` gives the unsigned quantizers
    their trainable clip (:meth:`agn.quant.ActQuant.learn_range`): call it before a checkpoint
    holding clips is loaded and before the optimizer is built."""
    if method not in CALIBRATIONS:
        raise ValueError(f"calibration {method!r}: expected one of {list(CALIBRATIONS)}")
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"calibration percentile {percentile}: expected a value in (50, 100]")
    for q in _quantizers(model):
        q.calibration, q.percentile = method, float(percentile)
        if method == "learned":
            q.learn_range()
    return model


def set_observe(model: nn.Module, observe: bool) -> nn.Module:
    """Let the activation observers track their ranges during training (or freeze them)."""
    for q in _quantizers(model):
        q.observe = observe
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable[torch.Tensor], num_batches: int) -> int:
    """Observer warm-up: reset every quantizer, run up to ``num_batches`` inputs in training mode.

    Returns the number of batches seen. Layers keep their current mode (normally FLOAT).
    """
    if num_batches < 1:
        raise ValueError(f"calibrate: num_batches must be >= 1, got {num_batches}")
    for q in _quantizers(model):
        q.calibrated.fill_(False)
        q.observe = True
    was_training = model.training
    model.train()
    seen = 0
    for x in batches:
        model(x)
        seen += 1
        if seen >= num_batches:
            break
    model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate: the batch iterable was empty")
    return seen


def approximate_(model: nn.Module, assignment: AssignmentLike) -> nn.Module:
    """Give every approximable layer the multiplier the assignment names (in place).

    ``assignment`` is an :class:`hwlib.Assignment`, an assignment file (any version), its decoded
    JSON, or a mapping layer name -> spec or hwlib Multiplier. Everything is validated before the
    model is touched: the names must be exactly the model's approximable layers and every spec
    must resolve in hwlib. Input quantizers are narrowed to the activation domain all their
    consumers accept (0..127 for signed catalog circuits).

    A layer entry holding groups gives the layer those blocks (see
    :meth:`ApproxConv2d.set_multiplier`).

    Raises:
        AssignmentError: missing or unknown layer names, a spec hwlib rejects, groups that do
            not fit a layer's channels.
    """
    asg = as_assignment(assignment)
    layers = dict(approx_layers(model))
    asg.check_names(list(layers), "assignment for the model")
    resolved = asg.canonical_specs()
    for x in asg.layers:
        x.check_shape(layers[x.name].weight.shape[0], layers[x.name].weight.shape[1])
    for name, layer in layers.items():
        layer.set_multiplier(resolved[name])
    _narrow_inputs([(layer, activation_range(layer.multipliers)) for layer in layers.values()])
    return model


def restrict_activations_(model: nn.Module, catalog: str | Catalog) -> tuple[int, int]:
    """Narrow every approximable layer's input quantizer (in place) to the activation codes all
    multipliers of ``catalog`` accept, so that any of them can later be assigned to any layer
    (0..127 for the signed EvoApprox circuits; 0..255, a no-op, for MARLIN's levels).

    Call it before calibration: the quantizer scales follow the narrower range.

    Returns:
        The (lo, hi) activation range.

    Raises:
        AssignmentError: a catalog hwlib does not know.
    """
    try:
        common = Catalog.build(catalog).activation_range
    except ValueError as exc:
        raise AssignmentError(f"catalog {catalog!r}: {exc}") from None
    _narrow_inputs([(layer, common) for _, layer in approx_layers(model)])
    return common


def _narrow_inputs(consumers: Iterable[tuple[nn.Module, tuple[int, int]]]) -> None:
    """Set each input quantizer's range to the intersection of its consumers' activation ranges
    (a quantizer may feed several layers)."""
    ranges: dict[int, tuple[ActQuant, int, int]] = {}
    for layer, (lo, hi) in consumers:
        q = layer.input_quant
        _, q_lo, q_hi = ranges.get(id(q), (q, 0, 255))
        ranges[id(q)] = (q, max(q_lo, lo), min(q_hi, hi))
    for q, lo, hi in ranges.values():
        q.set_range(lo, hi)


def noise_penalty(model: nn.Module, sigma_max: float) -> torch.Tensor:
    """``sum_l (c_l / C) * min(|sigma_l|, sigma_max)`` over the approximable layers.

    ``c_l`` is the layer's recorded multiplication count (``last_macs``) from a quantized forward.
    """
    layers = approx_layers(model)
    macs = [layer.last_macs for _, layer in layers]
    if any(c is None for c in macs):
        unknown = [n for (n, _), c in zip(layers, macs) if c is None]
        raise ValueError(f"noise_penalty: layers {unknown} have no multiplication count yet; run "
                         f"a quantized forward first")
    total = float(sum(macs))
    terms = [c / total * torch.clamp(layer.sigma.abs(), max=sigma_max)
             for c, (_, layer) in zip(macs, layers)]
    return torch.stack(terms).sum()


def reset_sigmas(model: nn.Module, sigma_init: float) -> None:
    """Set every layer's sigma to ``sigma_init`` (start of the noise stage)."""
    with torch.no_grad():
        for _, layer in approx_layers(model):
            layer.sigma.fill_(sigma_init)


def sigma_table(model: nn.Module) -> list[dict[str, Any]]:
    """Per layer: name, |sigma|, multiplications (per sample) and fan-in (the sigmas.json rows)."""
    rows = []
    for name, layer in approx_layers(model):
        if layer.last_macs is None:
            raise ValueError(f"sigma_table: layer {name!r} has no multiplication count yet; run "
                             f"a quantized forward first")
        rows.append({"name": name, "sigma": float(layer.sigma.detach().abs()),
                     "multiplications": int(layer.last_macs), "fan_in": int(layer.fan_in)})
    return rows


@torch.no_grad()
def fold_into(layer: nn.Module, bn: nn.Module) -> None:
    """Fold ``bn``'s affine map (running statistics) into the conv or linear ``layer`` before it:
    weights scaled per output channel, bias created if needed."""
    inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    layer.weight.mul_(inv.view(-1, *([1] * (layer.weight.dim() - 1))))
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = (bias - bn.running_mean) * inv + bn.bias
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias.clone())
    else:
        layer.bias.copy_(new_bias)


def fold_bn(model: nn.Module) -> int:
    """Fold each BatchNorm that directly follows an approximable layer in an ``nn.Sequential``
    (BatchNorm2d after an ApproxConv2d, BatchNorm1d after an ApproxLinear).

    The layer takes the BN's affine map (:func:`fold_into`, which :func:`agn.prepare` uses too)
    and the BN becomes ``nn.Identity``, so QAT and export see one layer with bias. Returns the
    count (0 when there is no BatchNorm).

    Raises:
        ValueError: a BatchNorm is left that is not such a pair (e.g. convs and BNs as
            attributes called one after the other), naming it: only :func:`agn.prepare`, which
            traces the call order, can fold it.
    """
    count = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            layer, bn = seq._modules[a], seq._modules[b]
            if ((isinstance(layer, ApproxConv2d) and isinstance(bn, nn.BatchNorm2d))
                    or (isinstance(layer, ApproxLinear) and isinstance(bn, nn.BatchNorm1d))):
                fold_into(layer, bn)
                seq._modules[b] = nn.Identity()
                count += 1
    left = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"fold_bn: BatchNorm {left} of {type(model).__name__} does not follow an "
                         f"approximable layer in an nn.Sequential, so fold_bn cannot see what it "
                         f"follows; use agn.prepare(model, example_inputs), which folds BatchNorm "
                         f"after a conv or linear layer wherever it sits (attribute or "
                         f"Sequential)")
    return count
