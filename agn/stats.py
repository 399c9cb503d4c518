"""Collect the error model's operand statistics from a torch model with forward hooks.

Every module that exposes ``integer_operands(x) -> (x_q uint8, w_q int8, zero_point)`` (the
approximable layers of :mod:`agn.layers`) is observed: its input is padded with the zero point in
the integer domain, receptive fields are cut out with ``unfold`` and a seeded random sample of
them is kept, and the exact integer output ``sum (x - zp) * w`` is accumulated in float64 for its
mean and std. The result is one :class:`errormodels.OperandStats` per layer.

The statistics are computed on the CPU: a model elsewhere (a GPU) is copied to the CPU and every
batch moved there, so the caller's model and device are left as they are.
"""
from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from errormodels import STATS_FILE, OperandStats, StatsError, save_stats
from errormodels.blocks import BLOCKS_FILE, BlockOperands, save_block_operands

__all__ = ["MeasuredError", "collect_stats", "measure_errors", "receptive_fields",
           "sample_batches", "write_operand_stats"]


def receptive_fields(layer: nn.Module, x_q: torch.Tensor, zero_point: int) -> torch.Tensor:
    """Every receptive field of ``layer`` on integer input ``x_q``, as int64 (F, fan_in).

    A conv field is one (sample, group, output position): the ``C_in/groups * kh * kw`` padded
    input values (padding = ``zero_point``) one output element of that group multiplies, in the
    weight's ``(ci, ky, kx)`` order. A linear field is one input row.
    """
    return _fields(layer, x_q, zero_point).to(torch.int64)


def _fields(layer: nn.Module, x_q: torch.Tensor, zero_point: int) -> torch.Tensor:
    """:func:`receptive_fields` as float32 (exact for uint8 values, half the memory of int64)."""
    x = x_q.to(torch.float32)
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            raise StatsError(f"receptive_fields: {type(layer).__name__} with padding="
                             f"{layer.padding!r}, padding_mode={layer.padding_mode!r}; expected "
                             f"integer zero-point padding")
        ph, pw = layer.padding
        xp = F.pad(x, (pw, pw, ph, ph), value=float(zero_point))
        cols = F.unfold(xp, layer.kernel_size, dilation=layer.dilation, stride=layer.stride)
        b, _, n_pos = cols.shape
        cols = cols.view(b, layer.groups, -1, n_pos).permute(0, 1, 3, 2)   # (B, G, L, fan_in)
        return cols.reshape(-1, cols.shape[-1])
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1])
    raise StatsError(f"receptive_fields: expected an nn.Conv2d or nn.Linear subclass, got "
                     f"{type(layer).__name__}")


def _exact_output(layer: nn.Module, x_q: torch.Tensor, w_q: torch.Tensor,
                  zero_point: int) -> torch.Tensor:
    """The exact integer output ``sum (xpad - zp) * w`` in float64 (exact below 2^53)."""
    xc = x_q.to(torch.float64) - zero_point
    w = w_q.to(torch.float64)
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(xc, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)
    return F.linear(xc, w)


class _Observer:
    """Forward pre-hook state of one layer."""

    def __init__(self, name: str, layer: nn.Module, per_batch: int, gen: torch.Generator) -> None:
        self.name, self.layer, self.per_batch, self.gen = name, layer, per_batch, gen
        self.fields: list[torch.Tensor] = []
        self.field_groups: list[torch.Tensor] = []
        self.w_q: torch.Tensor | None = None
        self.zero_point = 0
        self.count, self.total, self.total_sq = 0, 0.0, 0.0
        self.per_sample_outputs = 0
        self.kept: np.ndarray | None = None

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        x_q, w_q, zp = module.integer_operands(args[0])
        cols = _fields(module, x_q, zp)
        pick = torch.randperm(cols.shape[0], generator=self.gen)[:self.per_batch]
        self.fields.append(cols[pick].to(torch.int64))
        self.field_groups.append(_field_group(module, cols.shape[0] // x_q.shape[0], pick))
        y = _exact_output(module, x_q, w_q, zp)
        self.count += y.numel()
        self.total += float(y.sum())
        self.total_sq += float((y * y).sum())
        self.per_sample_outputs = y[0].numel()
        if self.w_q is not None and not torch.equal(self.w_q, w_q):
            raise StatsError(f"collect_stats: the integer weights of layer {self.name!r} changed "
                             f"between batches; collect statistics on a frozen model")
        self.w_q, self.zero_point = w_q.detach().clone(), int(zp)

    def result(self, n_fields: int, seed: int) -> OperandStats:
        if self.w_q is None:
            raise StatsError(f"collect_stats: layer {self.name!r} never ran in the forward pass")
        pool = torch.cat(self.fields)
        pick = torch.randperm(pool.shape[0], generator=self.gen)[:n_fields]
        groups = int(getattr(self.layer, "groups", 1))
        mean = self.total / self.count
        var = max(self.total_sq / self.count - mean * mean, 0.0)
        fields = pool[pick].numpy()
        self.kept = fields
        return OperandStats.from_operands(
            self.name, self.w_q.to(torch.int64).numpy(), fields,
            multiplications=self.per_sample_outputs * fields.shape[1], out_std=float(np.sqrt(var)),
            out_mean=float(mean), seed=seed, zero_point=self.zero_point, groups=groups,
            field_groups=torch.cat(self.field_groups)[pick].numpy())


def _field_group(layer: nn.Module, per_sample: int, rows: torch.Tensor) -> torch.Tensor:
    """The group of each of the :func:`receptive_fields` rows ``rows`` (int64), for a layer
    with ``per_sample`` fields per input sample (groups x output positions)."""
    groups = int(getattr(layer, "groups", 1))
    return (rows // (per_sample // groups)) % groups


def _inputs(batch: Any) -> torch.Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"collect_stats: a batch must be a tensor or an (x, y) pair, got "
                        f"{type(x).__name__}")
    return x


@torch.no_grad()
def collect_stats(model: nn.Module, batches: Iterable[Any], *, n_fields: int = 64, seed: int = 0,
                  max_batches: int | None = None,
                  block_operands: list[BlockOperands] | None = None) -> list[OperandStats]:
    """Operand statistics of every approximable layer of ``model``, in module order.

    The model runs in eval mode (no noise) in whatever quantized mode it is in (its quantizers
    must be calibrated, as after QAT or noise training); hooks are removed and the training flag
    restored afterwards.

    Args:
        model: the network, on any device (a model off the CPU is copied there); layers are
            the modules with ``integer_operands``.
        batches: tensors or ``(x, y)`` pairs, e.g. from :func:`sample_batches`.
        n_fields: receptive fields N kept per layer (sampled uniformly from all batches).
        seed: seed of the field sampling (recorded in every record).
        max_batches: stop after this many batches.
        block_operands: a list that receives each layer's sampled fields and integer weights
            (:class:`errormodels.blocks.BlockOperands`, the kernel-granularity error model's
            input), when given.

    Returns:
        One :class:`~errormodels.OperandStats` per approximable layer.
    """
    if n_fields < 1:
        raise StatsError(f"collect_stats: n_fields must be >= 1, got {n_fields}")
    model = _on_cpu(model, "collect_stats")
    layers = _approximable(model, "collect_stats")
    gen = torch.Generator().manual_seed(seed)
    observers = [_Observer(n, m, n_fields, gen) for n, m in layers]
    _run_hooked(model, layers, observers, batches, max_batches, "collect_stats")
    stats = [o.result(n_fields, seed) for o in observers]
    if block_operands is not None:
        block_operands.extend(BlockOperands.from_operands(o.name, o.w_q.to(torch.int64).numpy(),
                                                          o.kept)
                              for o in observers if o.w_q is not None and o.kept is not None)
    return stats


def _on_cpu(model: nn.Module, caller: str) -> nn.Module:
    """``model`` when its parameters and buffers are on the CPU, else a copy moved there."""
    devices = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    if all(d.type == "cpu" for d in devices):
        return model
    if any(d.type == "meta" for d in devices):
        raise StatsError(f"{caller}: {type(model).__name__} has tensors on the meta device (no "
                         f"data); load its weights (e.g. module.to_empty() + load_state_dict) "
                         f"first")
    return copy.deepcopy(model).cpu()


def _cpu_batch(x: torch.Tensor, caller: str) -> torch.Tensor:
    if x.device.type == "meta":
        raise StatsError(f"{caller}: a batch on the meta device has no data; give real inputs "
                         f"(any device: they are moved to the CPU)")
    return x.cpu()


def _approximable(model: nn.Module, caller: str) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module with ``integer_operands``, in module order."""
    layers = [(n, m) for n, m in model.named_modules()
              if callable(getattr(m, "integer_operands", None))]
    if not layers:
        raise StatsError(f"{caller}: {type(model).__name__} has no approximable layer (no "
                         f"module with integer_operands)")
    return layers


def _run_hooked(model: nn.Module, layers: Sequence[tuple[str, nn.Module]], hooks: Sequence[Any],
                batches: Iterable[Any], max_batches: int | None, caller: str) -> None:
    """Run ``model`` in eval mode over the batches with one forward pre-hook per layer.

    Batches are moved to the CPU (the model is there, see :func:`_on_cpu`). Hooks are removed and
    the training flag restored afterwards, also on error.
    """
    handles = [m.register_forward_pre_hook(h) for (_, m), h in zip(layers, hooks)]
    was_training = model.training
    model.eval()
    try:
        seen = 0
        for batch in batches:
            if max_batches is not None and seen >= max_batches:
                break
            model(_cpu_batch(_inputs(batch), caller))
            seen += 1
        if seen == 0:
            raise StatsError(f"{caller}: no batch was given")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


@dataclass(frozen=True)
class MeasuredError:
    """Output error of one layer under one multiplier, measured with the bit-exact engine.

    Attributes:
        layer: module name.
        multiplier: spec string.
        mean: mean of ``approx_acc - exact_acc`` over every output element seen.
        std: its standard deviation.
        count: number of output elements.
    """

    layer: str
    multiplier: str
    mean: float
    std: float
    count: int


class _ErrorMeter:
    """Forward pre-hook: run one layer's real integer operands through the engine per multiplier."""

    def __init__(self, specs: Sequence[str]) -> None:
        self.specs = list(specs)
        self.sums = {s: [0, 0.0, 0.0] for s in self.specs}

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        from agn.sim import approx_conv2d, approx_linear

        x_q, w_q, zp = module.integer_operands(args[0])
        if isinstance(module, nn.Conv2d):
            if tuple(module.dilation) != (1, 1) or isinstance(module.padding, str):
                raise StatsError(f"measure_errors: the engine needs dilation 1 and integer "
                                 f"padding, got dilation={module.dilation}, "
                                 f"padding={module.padding!r}")
            ph, pw = module.padding
            exact = F.conv2d(F.pad(x_q.to(torch.float64), (pw, pw, ph, ph), value=float(zp)),
                             w_q.to(torch.float64), None, module.stride, 0, 1, module.groups)
        else:
            x2 = x_q.to(torch.float64).reshape(-1, x_q.shape[-1])
            exact = F.linear(x2, w_q.to(torch.float64))
        for spec in self.specs:
            if isinstance(module, nn.Conv2d):
                acc = approx_conv2d(x_q, w_q, spec, module.stride, module.padding, module.groups,
                                    zp)
            else:
                acc = approx_linear(x_q.reshape(-1, x_q.shape[-1]), w_q, spec)
            e = acc.to(torch.float64) - exact
            s = self.sums[spec]
            s[0] += e.numel()
            s[1] += float(e.sum())
            s[2] += float((e * e).sum())


@torch.no_grad()
def measure_errors(model: nn.Module, batches: Iterable[Any], specs: Sequence[str], *,
                   max_batches: int | None = None) -> list[MeasuredError]:
    """Each approximable layer's own output error under each multiplier, on real operands.

    The network runs exactly (in its current quantized mode, eval); a pre-hook feeds every layer's
    integer input through ``agn.sim`` with each multiplier and compares with the exact integer
    accumulator, so each layer is measured alone on the operands it really sees.

    Args:
        model: the network (quantizers calibrated).
        batches: tensors or ``(x, y)`` pairs.
        specs: multiplier spec strings; their activation domain must hold the layers' inputs.
        max_batches: stop after this many batches.

    Returns:
        One :class:`MeasuredError` per (layer, spec), layers in module order.
    """
    model = _on_cpu(model, "measure_errors")
    layers = _approximable(model, "measure_errors")
    meters = [_ErrorMeter(specs) for _ in layers]
    _run_hooked(model, layers, meters, batches, max_batches, "measure_errors")
    out = []
    for (name, _), meter in zip(layers, meters):
        for spec in specs:
            n, s1, s2 = meter.sums[spec]
            mean = s1 / n
            std = float(np.sqrt(max(s2 / n - mean * mean, 0.0)))
            out.append(MeasuredError(name, spec, mean, std, n))
    return out


def sample_batches(dataset: Any, n_samples: int, batch_size: int = 64,
                   seed: int = 0) -> Iterator[torch.Tensor]:
    """A seeded random subset of ``dataset`` (items ``x`` or ``(x, y)``), as input batches."""
    n = len(dataset)
    if not 1 <= n_samples:
        raise StatsError(f"sample_batches: n_samples must be >= 1, got {n_samples}")
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:n_samples].tolist()
    for lo in range(0, len(idx), batch_size):
        items = [dataset[i] for i in idx[lo:lo + batch_size]]
        yield torch.stack([_inputs(it) for it in items])


def write_operand_stats(run_dir: str | os.PathLike[str], model: nn.Module, batches: Iterable[Any],
                        *, n_fields: int = 64, seed: int = 0,
                        max_batches: int | None = None) -> Path:
    """Collect the statistics and write ``run_dir/operand_stats.npz`` (and the same fields and
    weights as ``run_dir/block_operands.npz``) atomically."""
    blocks: list[BlockOperands] = []
    stats = collect_stats(model, batches, n_fields=n_fields, seed=seed, max_batches=max_batches,
                          block_operands=blocks)
    save_block_operands(Path(run_dir) / BLOCKS_FILE, blocks)
    return save_stats(Path(run_dir) / STATS_FILE, stats)
