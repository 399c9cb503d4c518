"""Run a ``deploy`` integer network in torch with the fast bit-exact engine.

The twin of :func:`deploy.reference.run.run` (same integers, kernel by kernel, per
docs/integer_semantics.md) but batched through ``agn.sim``: the NSGA-II search scores every
candidate with it and the export checks it against the torch model. Tests hold it equal to the
NumPy reference bit for bit.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from agn import sim
from agn.data.generic import DataModule
from agn.ir_rounding import ActivationRounding
from agn.prefix_cache import DEFAULT_BYTES, ActivationCache, CacheStats
from agn.sim import ckernel, crequant
from agn.sim.blocks import blocked_conv2d, blocked_linear
from agn.sim.memo import IdentityMemo
from deploy.backend import Backend
from deploy.infer import TensorInfo
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
from deploy.network import Network
from errormodels.compensate import Compensation
from hwlib import Assignment

__all__ = ["TORCH", "IntegerScorer", "integer_split", "predict", "run_integer",
           "take_cache_stats"]

TORCH: Backend[torch.Tensor] = Backend("torch integer executor")
"""The torch backend: ``TORCH(node, ins, infos)`` is the node's output for the input tensors."""

Tensors = list[torch.Tensor]
Infos = list[TensorInfo]


_memo = IdentityMemo(1024)
"""The torch constants of the frozen IR's arrays, built once instead of on every call of a
candidate (keyed by the arrays' identity)."""


def _weights(node: Conv | Linear) -> torch.Tensor:
    """The node's integer weights as a tensor (one per weight array, not one per call)."""
    return _memo((node.weight,), lambda: torch.tensor(node.weight))  # type: ignore[return-value]


def _requant_consts(rq: Requant, bias: np.ndarray | None, dims: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | int]:
    """(mult, bias * mult + 2^(shift-1), shift) as int64 tensors shaped for ``dims``-D
    accumulators (the shift an int when every channel shares it)."""
    shape = (1, -1) + (1,) * (dims - 2)
    m, const, s = crequant.constants(rq.mult, rq.shift, bias)
    shift = int(s[0]) if bool((s == s[0]).all()) else s.view(shape)
    return m.view(shape), const.view(shape), shift


def _requant(acc: torch.Tensor, rq: Requant | None, bias: np.ndarray | None = None,
             owned: bool = True) -> torch.Tensor:
    """Per-channel ``clip((((acc + bias)*mult + 2^(shift-1)) >> shift) + zp_out, lo, hi)``
    (int64 arithmetic, uint8 result); without requantisation ``acc + bias`` in int64.

    int32 accumulators go through the compiled kernel (:mod:`agn.sim.crequant`, one pass)
    where it is loaded. Otherwise this works in place on one int64 copy of ``acc`` (on ``acc``
    itself when it is int64 and ``owned``: a fresh tensor nothing else reads): the bias and the
    rounding term fold into one per-channel constant, ``bias * mult + 2^(shift-1)``, so each
    element sees four passes.
    """
    if rq is None:
        out = acc.to(torch.int64, copy=not owned)
        if bias is None:
            return out
        b = _memo((bias,), lambda: torch.from_numpy(bias.astype(np.int64)))
        return out.add_(b.view((1, -1) + (1,) * (acc.dim() - 2)))  # type: ignore[attr-defined]
    lib = ckernel.library() if acc.dtype == torch.int32 and ckernel.available() else None
    if lib is not None:
        fused = crequant.requant(lib, acc, _memo((rq, bias), lambda: crequant.constants(
            rq.mult, rq.shift, bias), "compiled"), rq.zp_out, rq.lo, rq.hi)
        if fused is not None:
            return fused
    m, const, shift = _memo((rq, bias), lambda: _requant_consts(rq, bias, acc.dim()),
                            acc.dim())  # type: ignore[misc]
    out = acc.to(torch.int64, copy=not owned)
    out.mul_(m).add_(const).bitwise_right_shift_(shift)
    return out.add_(rq.zp_out).clamp_(rq.lo, rq.hi).to(torch.uint8)


def _window_sum(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    area = kernel[0] * kernel[1]
    return torch.round(F.avg_pool2d(x.to(torch.float64), kernel, stride) * area).to(torch.int64)


@TORCH.register(Conv)
def _conv(node: Conv, ins: Tensors, infos: Infos) -> torch.Tensor:
    zp = infos[0].zero_point
    top, bottom, left, right = node.padding
    x, pad = ins[0], (top, left)
    if (top, left) != (bottom, right):
        # asymmetric: pad here (with the zero point), the engine pads none
        x, pad = F.pad(x, (left, right, top, bottom), value=zp), (0, 0)
    w = _weights(node)
    if isinstance(node.multiplier, str):
        acc = sim.approx_conv2d(x, w, node.multiplier, stride=node.stride, padding=pad,
                                groups=node.groups, zero_point=zp)
    else:
        acc = blocked_conv2d(x, w, node.multiplier, stride=node.stride, padding=pad,
                             groups=node.groups, zero_point=zp)
    return _requant(acc, node.requant, node.bias)


@TORCH.register(Linear)
def _linear(node: Linear, ins: Tensors, infos: Infos) -> torch.Tensor:
    w = _weights(node)
    acc = (sim.approx_linear(ins[0], w, node.multiplier) if isinstance(node.multiplier, str)
           else blocked_linear(ins[0], w, node.multiplier))
    return _requant(acc, node.requant, node.bias)


@TORCH.register(MaxPool)
def _maxpool(node: MaxPool, ins: Tensors, infos: Infos) -> torch.Tensor:
    top, bottom, left, right = node.padding
    x = F.pad(ins[0], (left, right, top, bottom), value=0) if any(node.padding) else ins[0]
    return F.max_pool2d(x.to(torch.float32), node.kernel, node.stride).to(torch.uint8)


@TORCH.register(AvgPool)
def _avgpool(node: AvgPool, ins: Tensors, infos: Infos) -> torch.Tensor:
    return _requant(_window_sum(ins[0], node.kernel, node.stride), node.requant)


@TORCH.register(GlobalAvgPool)
def _global_avgpool(node: GlobalAvgPool, ins: Tensors, infos: Infos) -> torch.Tensor:
    _, h, w = infos[0].shape
    return _requant(_window_sum(ins[0], (h, w), (1, 1)), node.requant)


@TORCH.register(Add)
def _add(node: Add, ins: Tensors, infos: Infos) -> torch.Tensor:
    a, b = (t.to(torch.int64) for t in ins)
    s = (a - node.zp_a) * node.mult_a + (b - node.zp_b) * node.mult_b + (1 << (node.shift - 1))
    out = torch.bitwise_right_shift(s, node.shift) + node.zp_out
    return out.clamp_(node.lo, node.hi).to(torch.uint8)


@TORCH.register(Flatten)
def _flatten(node: Flatten, ins: Tensors, infos: Infos) -> torch.Tensor:
    return ins[0].reshape(ins[0].shape[0], -1)


@TORCH.register(Requantize)
def _requantize(node: Requantize, ins: Tensors, infos: Infos) -> torch.Tensor:
    return _requant(ins[0], node.requant, owned=False)  # the input has other readers


@torch.no_grad()
def run_integer(net: Network, x: torch.Tensor | np.ndarray,
                keep: bool = False) -> dict[str, torch.Tensor] | torch.Tensor:
    """Integer outputs of ``net`` for a uint8-valued batch (N, C, H, W): uint8 activations and
    int64 accumulators (the logits).

    Returns the last node's output, or with ``keep`` every node's output by name (as
    :func:`deploy.reference.run.run` does).
    """
    outs: dict[str, torch.Tensor] = {net.input.name: _input_tensor(net, x)}
    for node in net.nodes[1:]:
        outs[node.name] = TORCH(node, [outs[s] for s in node.inputs],
                                [net.infos[s] for s in node.inputs])
    return outs if keep else outs[net.nodes[-1].name]


def _input_tensor(net: Network, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``x`` as a uint8 tensor, after checking its shape and values against ``net``'s input."""
    inp: Input = net.input
    xt = torch.as_tensor(np.asarray(x))
    if xt.dim() != 4 or tuple(xt.shape[1:]) != tuple(inp.shape):
        raise ValueError(f"run_integer({net.name!r}): input expected shape (N, "
                         f"{', '.join(map(str, inp.shape))}), got {tuple(xt.shape)}")
    if xt.numel() and (int(xt.min()) < inp.lo or int(xt.max()) > inp.hi):
        raise ValueError(f"run_integer({net.name!r}): input expected values in {inp.lo}.."
                         f"{inp.hi}, got [{int(xt.min())}, {int(xt.max())}]")
    return xt.to(torch.uint8)


def predict(net: Network, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class predictions (argmax of the integer logits) for a uint8 batch, in chunks."""
    preds = [run_integer(net, x[i:i + batch_size]).argmax(dim=1).numpy()
             for i in range(0, len(x), batch_size)]
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def integer_split(model: torch.nn.Module, dm: DataModule, split: str, limit: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 inputs as ``model``'s input quantizer codes them, labels) of a set-up data split,
    its first ``limit`` images (0 = all)."""
    ds = dm.split(split)
    n = len(ds) if not limit else min(limit, len(ds))
    with torch.no_grad():
        xq = model.quant_in.to_int(dm.normalize(ds.tensors[0][:n])).to(torch.uint8).numpy()
    return xq, ds.tensors[1][:n].numpy()


class IntegerScorer:
    """Validation error (1 - accuracy) of ``net`` under an assignment, by bit-exact simulation.

    ``fixed`` maps layers kept out of the search to their multiplier (MARLIN's protocol keeps the
    classifier exact). The activations where candidates can part (a layer's input, the end of a
    residual branch) are kept in an :class:`ActivationCache` of ``cache_bytes`` (0 disables it),
    keyed by the data chunk and the multipliers of the layers
    upstream, so a candidate sharing its first layers' multipliers with one scored before runs
    only the layers after them; the errors are the same with and without it. With
    ``compensation`` every layer's bias is lowered by its expected error under the candidate's
    multiplier (:func:`agn.export.compensate_network`), so candidates are scored compensated.
    With ``rounding`` each candidate's activation codes are offset for the circuits that ignore
    low activation bits (:class:`agn.ir_rounding.ActivationRounding`: what the exporter writes
    for a model with ``round_operands_(model, weights=False)``), before the compensation.
    Picklable (numpy data, the frozen IR and an empty cache), so Dask workers run it, each with
    its own cache.
    """

    def __init__(self, net: Network, x: np.ndarray, y: np.ndarray, batch_size: int = 512,
                 fixed: Mapping[str, str] | None = None,
                 cache_bytes: int = DEFAULT_BYTES,
                 compensation: Compensation | None = None,
                 rounding: bool = False) -> None:
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"IntegerScorer: expected as many labels as inputs (> 0), got "
                             f"{len(x)} inputs and {len(y)} labels")
        self.net, self.x, self.y, self.batch_size = net, np.asarray(x), np.asarray(y), batch_size
        self.fixed = dict(fixed or {})
        self.compensation = compensation
        self.rounding = ActivationRounding(net) if rounding else None
        self.cache = ActivationCache(cache_bytes)
        self._chunks = [_input_tensor(net, self.x[i:i + batch_size])
                        for i in range(0, len(self.x), batch_size)]
        self._upstream = _upstream_layers(net)
        self._producers = _upstream_producers(net, self.rounding.producers if rounding else ())
        self._kept = _parting_nodes(net, self._upstream)
        self._n_layers = sum(isinstance(n, (Conv, Linear)) for n in net.nodes)
        self._validated: dict[tuple[tuple[int, ...], str, str], Node] = {}
        self._bases: dict[tuple[int, ...], Network] = {}
        self._layer_names = frozenset(n.name for n in net.layers)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_validated": {}, "_bases": {}}  # rebuilt on use

    def _nodes(self, full: Mapping[str, str], offsets: tuple[int, ...]
               ) -> tuple[tuple[Node, ...], Mapping[str, TensorInfo]]:
        """``net``'s nodes with the multipliers of ``full`` (and the producers' codes offset by
        ``offsets``), and their inputs' infos.

        A layer given a multiplier it was checked with before (under the same offsets) reuses
        that checked node (a layer's check depends on it and its input only); without
        compensation and rounding, a layer given a new spec string is checked on its own when its
        output info stays the network's (nothing downstream can then change); otherwise
        :func:`deploy.with_multipliers` checks the whole assignment, raising what it raises.
        """
        from deploy import with_multipliers

        seen = [self._validated.get((offsets, name, spec)) for name, spec in full.items()]
        base = self._bases.get(offsets)
        whole = base is not None and len(full) == len(self.net.layers)
        if whole and self.compensation is None and self.rounding is None:
            seen = [n if n is not None else self._checked_alone(name, spec)
                    for (name, spec), n in zip(full.items(), seen)]
        if whole and all(n is not None for n in seen):
            by_name = {n.name: n for n in seen if n is not None}
            return tuple(by_name.get(n.name, n) for n in base.nodes), base.infos
        net = with_multipliers(self.net, full)
        if self.rounding is not None:
            net = self.rounding.apply(net, offsets)
        if self.compensation is not None:
            from agn.export import compensate_network

            layer_offsets = self.rounding.layer_offsets(offsets) if self.rounding else None
            net = compensate_network(net, self.compensation, layer_offsets)
        checked = {n.name: n for n in net.layers}
        self._validated.update({(offsets, name, spec): checked[name]
                                for name, spec in full.items()})
        self._bases.setdefault(offsets, net)
        return net.nodes, net.infos

    def _checked_alone(self, name: str, spec: object) -> Node | None:
        """Layer ``name`` with multiplier ``spec`` (a string) checked on its own inputs' infos,
        or None when that check fails, ``spec`` is not a string, or the layer's output info
        would differ from the network's (the caller then checks the whole network)."""
        if not isinstance(spec, str) or name not in self._layer_names:
            return None
        try:
            canonical = Assignment.from_mapping({name: spec}).canonical_specs()[name]
            node = dataclasses.replace(self.net.node(name), multiplier=canonical)
            info = node.infer([self.net.infos[s] for s in node.inputs])
        except (ValueError, TypeError):  # IRError, AssignmentError: the full check reports it
            return None
        if info != self.net.infos[name]:
            return None
        self._validated[((), name, spec)] = node
        return node

    def __call__(self, assignment: Mapping[str, str]) -> float:
        """Error of the network with ``assignment`` (plus the ``fixed`` layers) on the data."""
        full = {**self.fixed, **assignment}
        offsets = self.rounding.offsets(full) if self.rounding is not None else ()
        nodes, infos = self._nodes(full, offsets)
        specs = [getattr(n, "multiplier", None) for n in nodes]
        keys = {name: (tuple(specs[i] for i in up),
                       tuple(offsets[i] for i in self._producers[name]))
                for name, up in self._upstream.items()}
        preds, ran = [], 0
        for c, xt in enumerate(self._chunks):
            logits, computed = _run_cached(nodes, infos, xt, self.cache, c, keys,
                                           self._kept)
            preds.append(logits.argmax(dim=1).numpy())
            ran += computed
        total = self._n_layers * len(self._chunks)
        self.cache.record(total, total - ran)
        return float(np.mean(np.concatenate(preds) != self.y))

    def cache_stats(self) -> CacheStats:
        """Reuse of cached activations since the last :meth:`reset_cache_stats`."""
        return self.cache.stats()

    def reset_cache_stats(self) -> None:
        """Zero the reuse counters (the cached activations stay)."""
        self.cache.reset_stats()


def take_cache_stats(scorer: IntegerScorer) -> CacheStats:
    """``scorer``'s cache statistics, its counters then zeroed (what a Dask worker's copy
    reports at the end of a search)."""
    stats = scorer.cache_stats()
    scorer.reset_cache_stats()
    return stats


def _upstream_layers(net: Network) -> dict[str, tuple[int, ...]]:
    """For each node, the indices (into ``net.nodes``) of the conv / linear nodes its output
    depends on, itself included, in execution order."""
    up: dict[str, frozenset[int]] = {}
    for i, n in enumerate(net.nodes):
        deps = frozenset().union(*(up[s] for s in n.inputs)) if n.inputs else frozenset()
        up[n.name] = deps | {i} if isinstance(n, (Conv, Linear)) else deps
    return {name: tuple(sorted(v)) for name, v in up.items()}


def _upstream_producers(net: Network, producers: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """For each node, the indices (into ``producers``) of the producers of rounded codes its
    output depends on, itself included (their offsets change what it computes)."""
    index = {p: i for i, p in enumerate(producers)}
    up: dict[str, frozenset[int]] = {}
    for n in net.nodes:
        deps = frozenset().union(*(up[s] for s in n.inputs)) if n.inputs else frozenset()
        up[n.name] = deps | {index[n.name]} if n.name in index else deps
    return {name: tuple(sorted(v)) for name, v in up.items()}


def _parting_nodes(net: Network, upstream: Mapping[str, tuple[int, ...]]) -> frozenset[str]:
    """Nodes (the input excepted) read by a node depending on more layers than they do: where
    candidates' keys part, so what the cache keeps (a layer's input, a residual branch's end)."""
    first = net.nodes[0].name
    return frozenset(s for n in net.nodes for s in n.inputs
                     if s != first and upstream[s] != upstream[n.name])


@torch.no_grad()
def _run_cached(nodes: tuple[Node, ...], infos: Mapping[str, TensorInfo], xt: torch.Tensor,
                cache: ActivationCache, chunk: int, keys: Mapping[str, tuple],
                kept: frozenset[str]) -> tuple[torch.Tensor, int]:
    """The last node's output for chunk ``chunk`` (``xt``), reading kept nodes from ``cache``
    and computing only what they do not cover; also how many conv / linear nodes ran."""
    outs: dict[str, torch.Tensor] = {nodes[0].name: xt}
    todo: list = []
    needed = {nodes[-1].name}
    for node in reversed(nodes[1:]):
        if node.name not in needed:
            continue
        hit = cache.get((chunk, node.name, keys[node.name])) if node.name in kept else None
        if hit is not None:
            outs[node.name] = hit
        else:
            todo.append(node)
            needed.update(node.inputs)
    for node in reversed(todo):
        out = TORCH(node, [outs[s] for s in node.inputs], [infos[s] for s in node.inputs])
        outs[node.name] = out
        if node.name in kept:
            cache.put((chunk, node.name, keys[node.name]), out)
    return outs[nodes[-1].name], sum(isinstance(n, (Conv, Linear)) for n in todo)
