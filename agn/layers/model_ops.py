"""Whole-model operations: list layers, switch modes, assign multipliers, calibrate, fold BN."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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
           "set_observe", "sigma_groups", "sigma_logs", "sigma_table"]


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
    A layer with one sigma per output channel contributes ``sum_c (c_l / C_out / C) min(|sigma_lc|,
    sigma_max)`` (each channel weighted by its multiplications), which is the per-layer term when
    its channel sigmas are equal.
    """
    layers = approx_layers(model)
    macs = [layer.last_macs for _, layer in layers]
    if any(c is None for c in macs):
        unknown = [n for (n, _), c in zip(layers, macs) if c is None]
        raise ValueError(f"noise_penalty: layers {unknown} have no multiplication count yet; run "
                         f"a quantized forward first")
    total = float(sum(macs))
    terms = [c / total * layer.sigma_reward(sigma_max) for c, (_, layer) in zip(macs, layers)]
    return torch.stack(terms).sum()


def reset_sigmas(model: nn.Module, sigma_init: float, per_channel: bool = False) -> None:
    """Set every layer's sigma to ``sigma_init`` (start of the noise stage): one per layer, or
    one per output channel (``per_channel``)."""
    with torch.no_grad():
        for _, layer in approx_layers(model):
            layer.set_sigma_shape(per_channel)
            layer.sigma.fill_(sigma_init)


def sigma_groups(sigmas: Sequence[nn.Parameter], lr: float) -> list[dict[str, Any]]:
    """The sigmas' optimizer groups, without weight decay: the per-layer (scalar) sigmas in one
    group at ``lr``; each layer's per-channel sigmas (``C_out`` of them) in their own group at
    ``lr * sqrt(C_out)``.

    A channel sigma receives ``1 / C_out`` of the layer sigma's reward gradient and its channel's
    share of the noise gradient (the shares add up to the layer's). At ``lr`` a wide layer's
    channel sigmas barely move in the epochs its single sigma needs; at ``lr * C_out`` their
    mean would step as the single sigma does, but each channel's step carries about
    ``sqrt(C_out)`` times the single sigma's gradient noise (on LeNet-5 digits they ran far past
    ``sigma_max`` and the noise training lost 12 points; ``bench/channel_sigmas.py``). At
    ``lr * sqrt(C_out)`` a channel's step has the single sigma's gradient noise and their mean
    moves ``1 / sqrt(C_out)`` of its step.
    """
    flat = [p for p in sigmas if p.dim() == 0]
    return [{"params": flat, "weight_decay": 0.0, "lr": lr},
            *({"params": [p], "weight_decay": 0.0, "lr": lr * math.sqrt(p.numel())}
              for p in sigmas if p.dim())]


def sigma_logs(model: nn.Module) -> dict[str, torch.Tensor]:
    """``sigma/<layer>`` -> the layer's |sigma| (per-channel sigmas: their quadratic mean, and
    their range as ``sigma_min/<layer>``, ``sigma_max/<layer>``), for the training logs."""
    logs = {}
    for name, layer in approx_layers(model):
        s = layer.sigma.detach().abs()
        if not s.dim():
            logs[f"sigma/{name}"] = s
            continue
        logs[f"sigma/{name}"] = torch.tensor(layer.layer_sigma)
        logs[f"sigma_min/{name}"], logs[f"sigma_max/{name}"] = s.min(), s.max()
    return logs


def sigma_table(model: nn.Module) -> list[dict[str, Any]]:
    """Per layer: name, |sigma|, multiplications (per sample) and fan-in (the sigmas.json rows);
    a layer with per-channel sigmas gives their quadratic mean as ``sigma`` and each channel's
    |sigma| in ``channel_sigmas``."""
    rows = []
    for name, layer in approx_layers(model):
        if layer.last_macs is None:
            raise ValueError(f"sigma_table: layer {name!r} has no multiplication count yet; run "
                             f"a quantized forward first")
        row = {"name": name, "sigma": layer.layer_sigma,
               "multiplications": int(layer.last_macs), "fan_in": int(layer.fan_in)}
        if layer.channel_sigmas:
            row["channel_sigmas"] = layer.sigma.detach().abs().tolist()
        rows.append(row)
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
