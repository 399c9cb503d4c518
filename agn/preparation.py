"""``prepare``: a plain PyTorch model as an approximable, explicitly quantized ``agn`` model.

The model is traced with torch.fx (as ``torch.ao``'s ``prepare_qat_fx`` traces) and rebuilt node
by node into the form :func:`agn.export.export` turns into the integer network:

- every ``nn.Conv2d`` / ``nn.Linear`` becomes an :class:`~agn.layers.ApproxConv2d` /
  :class:`~agn.layers.ApproxLinear` (float mode, same weights, same module name) bound to the
  quantization point in front of it;
- an :class:`~agn.quant.ActQuant` is inserted at the network input (``quant_in``), after every
  activation, on each operand of an add that is not quantized yet, after an add or an average
  pool, and wherever a layer's input is not quantized yet;
- a BatchNorm directly after a conv (or a BatchNorm1d after a linear) is folded into it, whether
  the two sit in an ``nn.Sequential`` or are attributes called one after the other;
- functional pooling and dropout become modules, ``view``/``reshape``/``flatten`` by the batch
  size become ``torch.flatten(x, 1)``, ``Hardtanh(0, 6)`` becomes ``ReLU6``, ``Identity`` goes;
  ``max_pool(conv(x))`` followed by a ReLU is computed as ``max_pool(relu(conv(x)))`` (equal:
  both are monotone) so the pooling sees a quantized non-negative tensor.

Anything else is refused at prepare time with the op, the graph node and the user's source line.
BatchNorm is folded with its running statistics: prepare a float-trained model (or accept that
the folded BN is the identity of a fresh one).
"""
from __future__ import annotations

import copy
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from agn.layers import ApproxConv2d, ApproxLinear, is_approximable
from agn.layers.model_ops import fold_into
from agn.quant import ActQuant

__all__ = ["PrepareError", "prepare"]


class PrepareError(ValueError):
    """A model structure :func:`prepare` cannot map onto the integer network."""


_RELU_FUNCS = {F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.hardtanh: "hardtanh"}
_RELU_METHODS = {"relu": "relu", "relu_": "relu"}
_ADD = (operator.add, operator.iadd, torch.add)
_ADD_METHODS = ("add", "add_", "__iadd__")
_FLATTEN_METHODS = ("view", "reshape", "flatten")
_PASS_METHODS = ("contiguous",)
_DROPOUT_FUNCS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout)


@dataclass(eq=False)
class _V:
    """A value of the rebuilt graph.

    kind: ``"q"`` (on a quantizer's grid), ``"acc"`` (a conv/linear output before its
    quantizer), ``"pend"`` (an add or average pool waiting for its quantizer) or ``"meta"``
    (a size, a shape, or the batch size).
    """

    kind: str
    node: fx.Node | None
    label: str
    scope: str
    nonneg: bool = False
    quant: ActQuant | None = None
    layer: nn.Module | None = None
    relu_done: bool = False
    batch: bool = False
    quantized: _V | None = field(default=None, repr=False)


def _user_line(n: fx.Node) -> str:
    """The user's source line that created ``n`` (from its recorded stack trace)."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n(?:    (.*))?', n.stack_trace or "")
    user = [f for f in frames if "/torch/" not in f[0]]
    if not user:
        return "an unknown source line"
    path, line, fn, code = user[-1]
    return f"{path}:{line} in {fn}" + (f": {code.strip()}" if code else "")


def _describe(n: fx.Node, mods: dict[str, nn.Module]) -> str:
    if n.op == "call_module":
        return f"module {type(mods[n.target]).__name__} ({n.target!r})"
    if n.op == "call_function":
        return f"function {getattr(n.target, '__name__', n.target)}"
    if n.op == "call_method":
        return f"method .{n.target}()"
    return f"{n.op} {n.target!r}"


class _Builder:
    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        self.root = copy.deepcopy(model)
        tracer = fx.Tracer()
        tracer.record_stack_traces = True
        try:
            self.src = tracer.trace(self.root)
        except Exception as exc:  # fx raises many types; name the cause
            raise PrepareError(f"agn.prepare: torch.fx cannot trace {type(model).__name__}: "
                               f"{type(exc).__name__}: {exc}") from exc
        self.mods = dict(self.root.named_modules())
        probe = copy.deepcopy(self.root).eval()
        with torch.no_grad():
            ShapeProp(fx.GraphModule(probe, self.src)).propagate(example)
        self.graph = fx.Graph()
        self.env: dict[fx.Node, _V] = {}
        self.names = set(self.mods)
        self.layer_nodes: set[str] = set()

    # ---- helpers -------------------------------------------------------------------------
    def refuse(self, n: fx.Node, why: str) -> PrepareError:
        return PrepareError(f"agn.prepare: {_describe(n, self.mods)} at graph node {n.name!r} "
                            f"({_user_line(n)}): {why}")

    def shape(self, n: fx.Node) -> tuple[int, ...] | None:
        meta = n.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def scope(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return n.target.rpartition(".")[0]
        stack = n.meta.get("nn_module_stack")
        return next(reversed(stack)) if stack else ""

    def add_module(self, scope: str, base: str, mod: nn.Module) -> str:
        """Register ``mod`` under ``scope`` with a fresh name ``base`` (``base_1``, ...)."""
        prefix = f"{scope}." if scope else ""
        name, i = base, 1
        while prefix + name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(prefix + name)
        parent = self.root.get_submodule(scope) if scope else self.root
        parent.add_module(name, mod)
        return prefix + name

    def set_module(self, path: str, mod: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        setattr(self.root.get_submodule(parent) if parent else self.root, name, mod)
        self.mods[path] = mod

    def call_module(self, path: str, *args) -> fx.Node:
        return self.graph.call_module(path, tuple(args))

    def quantize(self, v: _V, n: fx.Node) -> _V:
        """``v`` on a quantizer's grid: itself when it is, else through a new ActQuant."""
        if v.kind == "q":
            return v
        if v.kind == "meta":
            raise self.refuse(n, "expected a tensor operand, got a size or shape")
        if v.quantized is None:
            q = ActQuant(unsigned=v.nonneg)
            path = self.add_module(v.scope, f"{v.label}_q", q)
            node = self.call_module(path, v.node)
            v.quantized = _V("q", node, v.label, v.scope, nonneg=v.nonneg, quant=q)
        return v.quantized

    # ---- the walk ------------------------------------------------------------------------
    def run(self) -> fx.GraphModule:
        placeholders = [n for n in self.src.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise PrepareError(f"agn.prepare: expected a model with one tensor input, got "
                               f"{len(placeholders)} ({[p.name for p in placeholders]})")
        for n in self.src.nodes:
            self.env[n] = self.visit(n)
        gm = fx.GraphModule(self.root, self.graph, class_name=type(self.root).__name__)
        gm.graph.lint()
        gm.train(self.root.training)
        return gm

    def arg(self, a):
        return self.env[a] if isinstance(a, fx.Node) else a

    def visit(self, n: fx.Node) -> _V:
        if n.op == "placeholder":
            node = self.graph.placeholder(n.name)
            q = ActQuant(unsigned=False)
            path = self.add_module("", "quant_in", q)
            return _V("q", self.call_module(path, node), "quant_in", "", quant=q)
        if n.op == "output":
            return self.output(n)
        if n.op == "call_module":
            return self.module(n, self.mods[n.target])
        if n.op == "call_function":
            return self.function(n)
        if n.op == "call_method":
            return self.method(n)
        raise self.refuse(n, "no integer IR equivalent (parameters used outside a conv/linear "
                             "module, or an unsupported graph op)")

    def output(self, n: fx.Node) -> _V:
        (out,) = n.args
        if not isinstance(out, fx.Node):
            raise self.refuse(n, "expected the model to return one tensor (the logits)")
        v = self.env[out]
        if v.kind == "pend":
            v = self.quantize(v, n)
        elif v.kind == "acc" and v.layer is not None:
            v.layer.per_channel = False  # the logits: one weight scale ranks them exactly
        elif v.kind == "meta":
            raise self.refuse(n, "expected the model to return a tensor")
        self.graph.output(v.node)
        return v

    # ---- modules -------------------------------------------------------------------------
    def module(self, n: fx.Node, mod: nn.Module) -> _V:
        x = self.arg(n.args[0]) if n.args else None
        if len(n.args) != 1 or n.kwargs or not isinstance(x, _V):
            raise self.refuse(n, "expected a module called with one tensor")
        if isinstance(mod, (nn.Conv2d, nn.Linear)) or is_approximable(mod):
            return self.layer(n, mod, x)
        if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
            return self.batchnorm(n, mod, x)
        if isinstance(mod, nn.ReLU):
            return self.relu(n, x, "relu", n.target)
        if isinstance(mod, nn.ReLU6):
            return self.relu(n, x, "relu6", n.target)
        if isinstance(mod, nn.Hardtanh):
            if (mod.min_val, mod.max_val) != (0.0, 6.0):
                raise self.refuse(n, f"Hardtanh({mod.min_val}, {mod.max_val}) has no integer IR "
                                     f"equivalent; only Hardtanh(0, 6) (= ReLU6) does")
            self.set_module(n.target, nn.ReLU6())
            return self.relu(n, x, "relu6", n.target)
        if isinstance(mod, nn.Identity):
            return x
        if isinstance(mod, nn.modules.dropout._DropoutNd):
            return self.dropout(n, x, n.target)
        if isinstance(mod, nn.MaxPool2d):
            self.check_pool(n, dilation=mod.dilation, ceil_mode=mod.ceil_mode,
                            return_indices=mod.return_indices)
            return self.maxpool(n, x, n.target)
        if isinstance(mod, nn.AvgPool2d):
            self.check_avgpool(n, mod.padding, mod.ceil_mode, mod.divisor_override)
            return self.avgpool(n, x, n.target)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return self.adaptive(n, x, mod.output_size)
        if isinstance(mod, nn.Flatten):
            if mod.start_dim != 1 or mod.end_dim != -1:
                raise self.refuse(n, f"only Flatten(1, -1) maps to the IR, got "
                                     f"({mod.start_dim}, {mod.end_dim})")
            return self.flatten(n, x)
        raise self.refuse(n, "no integer IR equivalent")

    def layer(self, n: fx.Node, mod: nn.Module, x: _V) -> _V:
        if n.target in self.layer_nodes:
            raise self.refuse(n, "the layer is called more than once; each call needs its own "
                                 "layer (its own input quantizer and multiplier)")
        self.layer_nodes.add(n.target)
        if isinstance(mod, nn.Conv2d):
            if (mod.dilation != (1, 1) or mod.padding_mode != "zeros"
                    or isinstance(mod.padding, str)):
                raise self.refuse(n, f"expected dilation 1, padding_mode 'zeros' and integer "
                                     f"padding; got dilation={mod.dilation}, padding_mode="
                                     f"{mod.padding_mode!r}, padding={mod.padding!r}")
        xq = self.quantize(x, n)
        if not is_approximable(mod):
            cls = ApproxConv2d if isinstance(mod, nn.Conv2d) else ApproxLinear
            mod = cls.from_float(mod)
            mod.train(self.mods[n.target].training)
            self.set_module(n.target, mod)
        mod.bind_input_quant(xq.quant)
        node = self.call_module(n.target, xq.node)
        return _V("acc", node, n.target.rpartition(".")[2], self.scope(n), layer=mod)

    def batchnorm(self, n: fx.Node, bn: nn.Module, x: _V) -> _V:
        src = n.args[0]
        conv = isinstance(bn, nn.BatchNorm2d) and isinstance(x.layer, ApproxConv2d)
        lin = isinstance(bn, nn.BatchNorm1d) and isinstance(x.layer, ApproxLinear)
        if x.kind != "acc" or x.relu_done or not (conv or lin):
            raise self.refuse(n, "BatchNorm is supported only directly after a conv "
                                 "(BatchNorm2d) or a linear layer (BatchNorm1d), where it is "
                                 "folded")
        if len(src.users) != 1:
            raise self.refuse(n, f"the layer before this BatchNorm is also used by "
                                 f"{[u.name for u in src.users if u is not n]}; it cannot be "
                                 f"folded")
        if not bn.track_running_stats or bn.running_mean is None:
            raise self.refuse(n, "BatchNorm without running statistics cannot be folded")
        fold_into(x.layer, bn)
        return _V("acc", x.node, n.target.rpartition(".")[2], x.scope, layer=x.layer)

    # ---- activations ---------------------------------------------------------------------
    def relu(self, n: fx.Node, x: _V, kind: str, target: str | None = None) -> _V:
        if x.kind == "q":
            if x.nonneg:
                return x  # already >= 0 on its grid
            raise self.refuse(n, "ReLU of a tensor that is already quantized with a zero point "
                                 "(e.g. after pooling or a layer input): apply the ReLU before")
        if x.kind == "meta":
            raise self.refuse(n, "expected a tensor")
        if x.kind == "pend" and x.nonneg:
            return x
        if target is not None:
            node = self.call_module(target, x.node)
        else:
            node = self.graph.call_function(F.relu6 if kind == "relu6" else F.relu, (x.node,))
        label = target.rpartition(".")[2] if target else kind
        v = _V(x.kind, node, label, self.scope(n), nonneg=True, relu_done=True)
        return self.quantize(v, n)

    # ---- pooling -------------------------------------------------------------------------
    def check_pool(self, n: fx.Node, dilation=1, ceil_mode=False, return_indices=False) -> None:
        if dilation not in (1, (1, 1)) or ceil_mode or return_indices:
            raise self.refuse(n, f"expected dilation 1, ceil_mode False and no indices; got "
                                 f"dilation={dilation}, ceil_mode={ceil_mode}, "
                                 f"return_indices={return_indices}")

    def check_avgpool(self, n: fx.Node, padding, ceil_mode, divisor) -> None:
        if padding not in (0, (0, 0)) or ceil_mode or divisor is not None:
            raise self.refuse(n, f"the IR's average pooling has no padding, ceil_mode or "
                                 f"divisor_override; got padding={padding}, ceil_mode="
                                 f"{ceil_mode}, divisor_override={divisor}")

    def nonneg_input(self, n: fx.Node, x: _V, what: str) -> _V:
        """``x`` quantized and non-negative (zero point 0), as pooling in the IR needs."""
        if x.kind in ("acc", "pend") and not x.nonneg:
            users = list(n.users)
            follow = self.relu_kind(users[0]) if len(users) == 1 else None
            if follow is None or what != "max pooling":
                raise self.refuse(n, f"{what} of a tensor that may be negative; the IR pools "
                                     f"non-negative (ReLU) tensors")
            x = self.relu(n, x, follow)
        x = self.quantize(x, n)
        if not x.nonneg:
            raise self.refuse(n, f"{what} of a tensor quantized with a zero point; the IR pools "
                                 f"non-negative (ReLU) tensors")
        return x

    def relu_kind(self, n: fx.Node) -> str | None:
        """``"relu"``/``"relu6"`` when ``n`` is one (module, function or method), else None."""
        if n.op == "call_module":
            mod = self.mods[n.target]
            if isinstance(mod, nn.ReLU6) or (isinstance(mod, nn.Hardtanh)
                                             and (mod.min_val, mod.max_val) == (0.0, 6.0)):
                return "relu6"
            return "relu" if isinstance(mod, nn.ReLU) else None
        if n.op == "call_function" and n.target in _RELU_FUNCS:
            kind = _RELU_FUNCS[n.target]
            return "relu6" if kind == "hardtanh" else kind
        if n.op == "call_method":
            return _RELU_METHODS.get(n.target)
        return None

    def maxpool(self, n: fx.Node, x: _V, target: str) -> _V:
        x = self.nonneg_input(n, x, "max pooling")
        return _V("q", self.call_module(target, x.node), x.label, x.scope, nonneg=True,
                  quant=x.quant)

    def avgpool(self, n: fx.Node, x: _V, target: str) -> _V:
        x = self.nonneg_input(n, x, "average pooling")
        return _V("pend", self.call_module(target, x.node), target.rpartition(".")[2],
                  self.scope(n), nonneg=True)

    def adaptive(self, n: fx.Node, x: _V, output_size) -> _V:
        src, dst = self.shape(n.args[0]), self.shape(n)
        if src is None or dst is None or len(src) != 4:
            raise self.refuse(n, "expected a (N, C, H, W) input")
        (h, w), (oh, ow) = src[2:], dst[2:]
        if (oh, ow) == (h, w):
            return x  # the identity at this input size
        if (oh, ow) == (1, 1):
            pool: nn.Module = nn.AdaptiveAvgPool2d(1)
        elif h % oh == 0 and w % ow == 0:
            pool = nn.AvgPool2d((h // oh, w // ow))
        else:
            raise self.refuse(n, f"adaptive average pooling {h}x{w} -> {oh}x{ow} has uneven "
                                 f"windows; the IR pools with one window size")
        if n.op == "call_module" and isinstance(pool, nn.AdaptiveAvgPool2d):
            target = n.target
        else:
            target = self.add_module(self.scope(n), "avg_pool", pool)
        return self.avgpool(n, x, target)

    # ---- shapes and misc -----------------------------------------------------------------
    def flatten(self, n: fx.Node, x: _V) -> _V:
        src, dst = self.shape(n.args[0]), self.shape(n)
        if src is None or dst is None:
            raise self.refuse(n, "expected a tensor")
        if dst == src and len(src) == 2:
            return x  # already flat
        if len(src) != 4 or dst != (src[0], math.prod(src[1:])):
            raise self.refuse(n, f"only flattening (N, C, H, W) to (N, C*H*W) maps to the IR; "
                                 f"this gives {src} -> {dst}")
        xq = self.quantize(x, n)
        node = self.graph.call_function(torch.flatten, (xq.node, 1))
        return _V("q", node, xq.label, xq.scope, nonneg=xq.nonneg, quant=xq.quant)

    def dropout(self, n: fx.Node, x: _V, target: str) -> _V:
        xq = self.quantize(x, n)
        return _V("q", self.call_module(target, xq.node), xq.label, xq.scope, nonneg=xq.nonneg,
                  quant=xq.quant)

    def add(self, n: fx.Node, a, b) -> _V:
        if not (isinstance(a, _V) and isinstance(b, _V)):
            raise self.refuse(n, "only the add of two tensors (a residual) maps to the IR")
        a, b = self.quantize(a, n), self.quantize(b, n)
        node = self.graph.call_function(operator.add, (a.node, b.node))
        return _V("pend", node, "add", self.scope(n))

    def meta(self, n: fx.Node, batch: bool = False) -> _V:
        return _V("meta", None, n.name, self.scope(n), batch=batch)

    def function(self, n: fx.Node) -> _V:
        t = n.target
        args = [self.arg(a) for a in n.args]
        kw = n.kwargs
        if t in _RELU_FUNCS:
            kind = _RELU_FUNCS[t]
            if kind == "hardtanh":
                bound = {"min_val": -1.0, "max_val": 1.0} | dict(zip(("input", "min_val",
                                                                       "max_val"), n.args)) | kw
                lo, hi = bound["min_val"], bound["max_val"]
                if (float(lo), float(hi)) != (0.0, 6.0):
                    raise self.refuse(n, f"hardtanh({lo}, {hi}) has no integer IR equivalent; "
                                         f"only hardtanh(0, 6) (= relu6) does")
                kind = "relu6"
            return self.relu(n, args[0], kind)
        if t in _ADD:
            if len(args) != 2 or kw:
                raise self.refuse(n, "expected the add of two tensors")
            return self.add(n, *args)
        if t is F.max_pool2d or getattr(t, "__name__", "") == "max_pool2d":
            return self.functional_pool(n, t, nn.MaxPool2d, "max_pool")
        if t is F.avg_pool2d:
            return self.functional_pool(n, t, nn.AvgPool2d, "avg_pool")
        if t is F.adaptive_avg_pool2d:
            size = n.args[1] if len(n.args) > 1 else kw["output_size"]
            return self.adaptive(n, args[0], size)
        if t is torch.flatten:
            return self.flatten_call(n, args[0], list(n.args[1:]), kw)
        if t in _DROPOUT_FUNCS:
            p = n.args[1] if len(n.args) > 1 else kw.get("p", 0.5)
            cls = {F.dropout: nn.Dropout, F.dropout1d: nn.Dropout1d, F.dropout2d: nn.Dropout2d,
                   F.dropout3d: nn.Dropout3d, F.alpha_dropout: nn.AlphaDropout}[t]
            target = self.add_module(self.scope(n), "dropout", cls(p))
            return self.dropout(n, args[0], target)
        if t is getattr and len(n.args) == 2 and n.args[1] == "shape":
            return self.meta(n)
        if t is operator.getitem and isinstance(args[0], _V) and args[0].kind == "meta":
            return self.meta(n, batch=n.args[1] == 0)
        raise self.refuse(n, "no integer IR equivalent")

    def functional_pool(self, n: fx.Node, t: Callable, cls: type[nn.Module], base: str) -> _V:
        names = ("input", "kernel_size", "stride", "padding")
        bound = dict(zip(names, n.args)) | dict(n.kwargs)
        x = self.arg(bound.pop("input"))
        if cls is nn.MaxPool2d:
            self.check_pool(n, bound.pop("dilation", 1), bound.pop("ceil_mode", False),
                            bound.pop("return_indices", False))
        else:
            self.check_avgpool(n, bound.get("padding", 0), bound.pop("ceil_mode", False),
                               bound.pop("divisor_override", None))
            bound.pop("count_include_pad", None)
        if not isinstance(x, _V) or len(n.args) > 4:
            raise self.refuse(n, "expected a pooling of one tensor")
        pool = cls(**bound)
        target = self.add_module(self.scope(n), base, pool)
        if cls is nn.MaxPool2d:
            return self.maxpool(n, x, target)
        return self.avgpool(n, x, target)

    def flatten_call(self, n: fx.Node, x, rest: list, kw: dict) -> _V:
        start = rest[0] if rest else kw.get("start_dim", 0)
        end = rest[1] if len(rest) > 1 else kw.get("end_dim", -1)
        if start != 1 or end != -1:
            raise self.refuse(n, f"only flatten(x, 1) maps to the IR, got start_dim={start}, "
                                 f"end_dim={end}")
        return self.flatten(n, x)

    def method(self, n: fx.Node) -> _V:
        t = n.target
        args = [self.arg(a) for a in n.args]
        x = args[0]
        if t == "size":
            return self.meta(n, batch=len(n.args) > 1 and n.args[1] == 0)
        if t in _RELU_METHODS:
            return self.relu(n, x, _RELU_METHODS[t])
        if t in _ADD_METHODS:
            if len(args) != 2 or n.kwargs:
                raise self.refuse(n, "expected the add of two tensors")
            return self.add(n, *args)
        if t in _PASS_METHODS:
            return x
        if t == "flatten":
            return self.flatten_call(n, x, list(n.args[1:]), dict(n.kwargs))
        if t in ("view", "reshape"):
            return self.flatten(n, x)
        raise self.refuse(n, "no integer IR equivalent")


def prepare(model: nn.Module, example_inputs: torch.Tensor | tuple[torch.Tensor, ...]
            ) -> fx.GraphModule:
    """A copy of ``model`` with approximable layers, explicit quantization points and BatchNorm
    folded, ready for calibration, QAT, noise training and :func:`agn.export.export`.

    Args:
        model: a plain PyTorch image classifier taking one ``(N, C, H, W)`` tensor and
            returning the logits; it is not modified.
        example_inputs: one input batch (or a 1-tuple holding it), used to trace shapes; a
            batch of at least two samples tells the batch dimension apart from the others.

    Returns:
        A ``torch.fx.GraphModule`` keeping the model's module names (``layer1.0.conv1``), plus
        ``quant_in`` (the input quantizer) and one ``*_q`` quantizer per quantization point.
        Its layers are in float mode and its quantizers uncalibrated (see
        :func:`agn.layers.calibrate`).

    Raises:
        PrepareError: an op without an integer IR equivalent, naming the op, the graph node and
            the source line that created it.
    """
    if isinstance(example_inputs, tuple):
        if len(example_inputs) != 1:
            raise PrepareError(f"agn.prepare: expected one example input tensor, got "
                               f"{len(example_inputs)}")
        example_inputs = example_inputs[0]
    if not isinstance(example_inputs, torch.Tensor) or example_inputs.dim() != 4:
        raise PrepareError(f"agn.prepare: expected an example input of shape (N, C, H, W), got "
                           f"{getattr(example_inputs, 'shape', type(example_inputs).__name__)}")
    return _Builder(model, example_inputs).run()
