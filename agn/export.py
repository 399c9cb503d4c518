"""Export a trained, quantized ``agn`` model to the ``deploy`` integer network IR.

The model is traced with torch.fx (approximable layers, quantizers and option-A shortcuts are
leaves) and walked once. Every conv/linear becomes an IR layer with its integer weights, its bias on
the accumulator grid with the input zero-point correction folded in, and the multiplier spec; the
next quantization point becomes its per-channel requantisation (integer multiplier and shift
approximating ``s_x * s_w[c] / s_out``); pooling, residual adds and flattening map to their IR
nodes. BatchNorm must be folded first (:func:`agn.layers.fold_bn`); the last layer without a
quantizer after it yields int32 logits.

The integer network is the ground truth that the search scores and the firmware runs; the float
fake-quant model approximates it (its requantisation rounds in float), so :func:`export` reports
how often the two agree on a batch instead of claiming bit equality between them.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from agn.layers import ApproxConv2d, is_approximable
from agn.models.resnet import ShortcutA
from agn.quant import ActQuant
from deploy import (
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Input,
    Linear,
    MaxPool,
    Network,
    Requant,
)
from errormodels.compensate import Compensation

__all__ = ["ExportError", "compensate_network", "export", "requant_params"]


class ExportError(ValueError):
    """A model structure the exporter cannot express in the integer IR."""


@dataclass
class _Q:
    """A uint8 IR tensor: node name, scale, zero point, integer range, and the operand-rounding
    offset its codes carry (the zero point includes it; the real value is ``scale * (q - zp)``)."""

    name: str
    scale: float
    zp: int
    lo: int = 0
    hi: int = 255
    offset: int = 0


@dataclass
class _Acc:
    """A conv/linear whose accumulators wait for the next quantizer (real scale per channel)."""

    layer: nn.Module
    mod_name: str
    src: _Q
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    relu: bool = False
    cap: float | None = None


@dataclass
class _Sum:
    """An average pool's window sums waiting for the next quantizer (``kernel`` None: global)."""

    src: _Q
    area: int
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None


@dataclass
class _AddP:
    """A residual add waiting for the next quantizer."""

    a: _Q
    b: _Q
    relu: bool = False
    cap: float | None = None


def requant_params(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer (mult, shift) per channel, ``mult / 2^shift ~= ratio``, mult in [2^30, 2^31)."""
    r = np.asarray(ratio, dtype=np.float64).reshape(-1)
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ExportError(f"requantisation ratio must be positive and finite, got {r.tolist()}")
    mult = np.zeros(r.shape, np.int64)
    shift = np.zeros(r.shape, np.int64)
    for i, v in enumerate(r):
        s = int(30 - math.floor(math.log2(v)))
        m = int(round(v * 2.0**s))
        if m >= 2**31:
            s, m = s - 1, int(round(v * 2.0**(s - 1)))
        if not 1 <= s <= 62:
            raise ExportError(f"requantisation ratio {v:.3g} of channel {i} needs shift {s}, "
                              f"outside 1..62")
        mult[i], shift[i] = m, s
    return mult, shift


#: Accumulator biases at or beyond this magnitude are not stored as they are (see
#: :func:`_constant_channels`); below it, int32 keeps room for the products of any fan-in the IR
#: accepts.
BIAS_LIMIT = 2**30
#: Shift of a constant channel's requantisation: its bias is ``(code - zp_out) << CONST_SHIFT``,
#: so sums of up to ``2**(CONST_SHIFT - 1)`` from products with a zero weight (``m(x, 0)``, which
#: is 0 for exact and MARLIN multipliers) cannot move its output code.
CONST_SHIFT = 22


def _layer_params(v: _Acc, scale_out: float, zp_out: int, clip: tuple[int, int] | None
                  ) -> tuple[np.ndarray, np.ndarray, Requant | None]:
    """Weights, int32 bias and requantisation (None: int32 output) of a layer.

    A channel whose accumulator bias reaches :data:`BIAS_LIMIT` (near-zero weights, e.g. a folded
    BatchNorm with gamma ~ 0, under an ordinary bias) cannot keep that bias in int32. When its
    output code is the same for every input the layer can receive (its weights move the
    accumulator by less than what changes the rounded code), the channel is stored as that
    constant: zero weights, bias ``(code - zp_out) << CONST_SHIFT``, mult 1, shift
    ``CONST_SHIFT``. Otherwise, or for the last layer's int32 output, the export is refused:
    a bias is never wrapped.
    """
    big = np.flatnonzero(np.abs(v.bias) >= BIAS_LIMIT)
    where = f"layer {v.mod_name!r}: output channel(s) {big.tolist()} have accumulator biases " \
            f"{v.bias[big].tolist()}, beyond int32 (near-zero weights under an ordinary bias, " \
            f"e.g. a folded BatchNorm with gamma ~ 0)"
    if clip is None:
        if big.size:
            raise ExportError(f"{where}; the network's int32 output cannot hold them")
        return v.weight, v.bias.astype(np.int32), None
    lo, hi = clip
    ratio = v.scale / scale_out
    w = v.weight.reshape(v.weight.shape[0], -1).astype(np.int64)
    x_lo, x_hi = min(v.src.lo, v.src.zp), max(v.src.hi, v.src.zp)  # zero-point padding included
    pos, neg = np.where(w > 0, w, 0).sum(axis=1), np.where(w < 0, w, 0).sum(axis=1)
    acc_lo, acc_hi = v.bias + pos * x_lo + neg * x_hi, v.bias + pos * x_hi + neg * x_lo
    code_lo = np.clip(np.floor(acc_lo * ratio + 0.5) + zp_out, lo, hi).astype(np.int64)
    code_hi = np.clip(np.floor(acc_hi * ratio + 0.5) + zp_out, lo, hi).astype(np.int64)
    varying = [int(c) for c in big if code_lo[c] != code_hi[c]]
    if varying:
        raise ExportError(f"{where}; channel(s) {varying} are not constant over the input range "
                          f"(output codes {code_lo[varying].tolist()} to "
                          f"{code_hi[varying].tolist()}), so they cannot be stored exactly")
    mult, shift = requant_params(np.where(np.abs(v.bias) >= BIAS_LIMIT, 1.0, ratio))
    weight, bias = v.weight.copy(), v.bias.copy()
    weight[big] = 0
    bias[big] = (code_lo[big] - zp_out) << CONST_SHIFT
    mult[big], shift[big] = 1, CONST_SHIFT
    return weight, bias.astype(np.int32), Requant(mult=mult, shift=shift, zp_out=zp_out, lo=lo,
                                                  hi=hi)


def _pair(v: int | Sequence[int]) -> tuple[int, ...]:
    """A torch kernel/stride/padding argument as a pair."""
    return (v, v) if isinstance(v, int) else tuple(v)


def _offsets(model: nn.Module) -> dict[int, int]:
    """Operand-rounding offset of each input quantizer (by id), from the layers it feeds.

    Raises:
        ExportError: layers sharing an input quantizer with different offsets.
    """
    out: dict[int, tuple[int, str]] = {}
    for name, layer in model.named_modules():
        if not is_approximable(layer):
            continue
        q = id(layer.input_quant)
        prev = out.setdefault(q, (layer.x_offset, name))
        if prev[0] != layer.x_offset:
            raise ExportError(f"layers {prev[1]!r} and {name!r} read one quantizer with operand "
                              f"rounding offsets {prev[0]} and {layer.x_offset}; they must agree "
                              f"(agn.layers.round_operands_ sets them per quantizer)")
    return {q: off for q, (off, _) in out.items() if off}


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (is_approximable(m) or isinstance(m, (ActQuant, ShortcutA))
                or super().is_leaf_module(m, qualname))


def _qparams(q: ActQuant) -> tuple[float, int, int, int]:
    scale, zp = q.qparams()
    lo, hi = q.int_range()
    return float(scale), int(zp), lo, hi


def _per_channel(value: torch.Tensor | Sequence[float] | None, what: str,
                 channels: int) -> tuple[float, ...] | None:
    """``value`` (a data module's ``(1, C, 1, 1)`` tensor or C numbers) as C float32 values."""
    if value is None:
        return None
    v = torch.as_tensor(value, dtype=torch.float32).flatten()
    if v.numel() != channels:
        raise ExportError(f"export: {what} expected {channels} values (one per input channel), "
                          f"got {v.numel()}")
    return tuple(float(t) for t in v)


class _Exporter:
    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int], name: str,
                 mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
        self.model, self.input_shape, self.name = model, input_shape, name
        self.mean, self.std = mean, std
        self.mods = dict(model.named_modules())
        self.nodes: list = []
        self.names: set[str] = set()
        self.offsets = _offsets(model)

    def _fresh(self, base: str) -> str:
        name, i = base or "node", 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    # ---- finalising pending values at a quantization point ------------------------------
    def _quantize(self, v, q: ActQuant, qname: str) -> _Q:
        scale, zp, lo, hi = _qparams(q)
        off = self.offsets.get(id(q), 0)
        cap = getattr(v, "cap", None)
        if cap is not None and scale * (hi - zp) > cap * (1 + 1e-6):
            raise ExportError(f"quantizer {qname!r} reaches {scale * (hi - zp):.4g} above the "
                              f"ReLU6 cap {cap}; the integer clip cannot express the cap")
        if off and isinstance(v, (torch.Tensor, _Q)):
            raise ExportError(f"quantizer {qname!r}: operand rounding (offset {off}) needs a "
                              f"requantisation producing its codes; the network input and "
                              f"already quantized tensors have none")
        if off:  # operand rounding: the producer's requantisation adds the offset (clip at hi)
            zp, lo = zp + off, min(lo + off, hi)
        if isinstance(v, torch.Tensor):  # the network input
            name = self._fresh("input")
            self.nodes.append(Input(name=name, shape=self.input_shape, scale=scale,
                                    zero_point=zp, lo=lo, hi=hi, mean=self.mean, std=self.std))
            return _Q(name, scale, zp, lo, hi)
        if isinstance(v, _Acc):
            out = self._emit_layer(v, scale, zp, (max(lo, zp) if v.relu else lo, hi))
            return dataclasses.replace(out, offset=off)
        if isinstance(v, _Sum):
            mult, shift = requant_params(np.full(self._channels(v.src), v.src.scale / v.area
                                                 / scale))
            name = self._fresh(qname.replace(".", "_") or "pool")
            rq = Requant(mult=mult, shift=shift, zp_out=zp, lo=lo, hi=hi)
            if v.kernel is None:
                self.nodes.append(GlobalAvgPool(name=name, input=v.src.name, requant=rq))
            else:
                self.nodes.append(AvgPool(name=name, input=v.src.name, kernel=v.kernel,
                                          stride=v.stride, requant=rq))
            return _Q(name, scale, zp, lo, hi, off)
        if isinstance(v, _AddP):
            return dataclasses.replace(self._emit_add(v, scale, zp, lo, hi, qname), offset=off)
        if isinstance(v, _Q):
            if math.isclose(v.scale, scale, rel_tol=1e-6) and v.zp - v.offset == zp:
                return v
            raise ExportError(f"quantizer {qname!r} re-quantizes an already quantized tensor "
                              f"(scale {v.scale:.4g} -> {scale:.4g}); the IR has no uint8 -> uint8 "
                              f"requantisation")
        raise ExportError(f"quantizer {qname!r} applied to an unsupported value {type(v).__name__}")

    def _channels(self, q: _Q) -> int:
        return self._net_so_far().infos[q.name].shape[0]

    def _net_so_far(self) -> Network:
        return Network(name=self.name, nodes=tuple(self.nodes))

    def _emit_layer(self, v: _Acc, scale_out: float, zp_out: int,
                    clip: tuple[int, int] | None) -> _Q:
        name = self._fresh(v.mod_name)
        weight, bias, rq = _layer_params(v, scale_out, zp_out, clip)
        common = dict(name=name, input=v.src.name, weight=weight, bias=bias,
                      multiplier=v.layer.spec, requant=rq)
        if isinstance(v.layer, ApproxConv2d):
            node = Conv(stride=tuple(v.layer.stride), padding=tuple(v.layer.padding),
                        groups=v.layer.groups, **common)
        else:
            node = Linear(**common)
        self.nodes.append(node)
        return _Q(name, scale_out, zp_out, rq.lo if rq else 0, rq.hi if rq else 255)

    def _emit_add(self, v: _AddP, scale: float, zp: int, lo: int, hi: int, qname: str) -> _Q:
        (ma, mb), (sa, sb) = requant_params(np.array([v.a.scale / scale, v.b.scale / scale]))
        shift = int(min(sa, sb))
        ma, mb = int(ma) >> (int(sa) - shift), int(mb) >> (int(sb) - shift)
        name = self._fresh(qname.rsplit(".", 1)[0].replace(".", "_") + "_add")
        self.nodes.append(Add(name=name, a=v.a.name, b=v.b.name, mult_a=ma, mult_b=mb,
                              shift=shift, zp_a=v.a.zp, zp_b=v.b.zp, zp_out=zp,
                              lo=max(lo, zp) if v.relu else lo, hi=hi))
        return _Q(name, scale, zp, lo, hi)

    # ---- layers --------------------------------------------------------------------------
    def _layer(self, layer: nn.Module, mod_name: str, x) -> _Acc:
        if not isinstance(x, _Q):
            raise ExportError(f"layer {mod_name!r}: its input is not quantized "
                              f"({type(x).__name__}); place an ActQuant before it")
        s_x, zp, _, _ = _qparams(layer.input_quant)
        if layer.x_offset != x.offset:
            raise ExportError(f"layer {mod_name!r} expects input codes offset by "
                              f"{layer.x_offset} (operand rounding), its input carries "
                              f"{x.offset}")
        if not math.isclose(s_x, x.scale, rel_tol=1e-6) or zp != x.zp - x.offset:
            raise ExportError(f"layer {mod_name!r} is bound to a quantizer (scale {s_x:.4g}, zp "
                              f"{zp}) other than the one producing its input (scale "
                              f"{x.scale:.4g}, zp {x.zp})")
        with torch.no_grad():
            _, w_q, _ = layer.integer_operands(torch.zeros(1))
            s_w = layer.weight_scales().to(torch.float32)
            s_x_t = layer.input_quant.qparams()[0]
            w = w_q.to(torch.int64)
            corr = zp * w.flatten(1).sum(dim=1)
            if layer.bias_correction is not None:  # error-mean compensation (compensate_)
                corr = corr + layer.bias_correction
            bias = layer.bias.detach() if layer.bias is not None else None
            gain = torch.ones_like(s_w)
            if "point_affine" in layer._modules:  # agn.operating_points: the active point's
                gain, beta = (t.detach() for t in layer.point_affine.gamma_beta())
                bias = beta / gain + (bias if bias is not None else 0.0)
            b = (torch.round(bias / (s_x_t * s_w)).to(torch.int64)
                 if bias is not None else torch.zeros(len(s_w), dtype=torch.int64))
        return _Acc(layer, mod_name, x, (s_x_t * s_w * gain).double().numpy(),
                    w.numpy().astype(np.int8), (b - corr).numpy())

    def _shortcut(self, mod: ShortcutA, mod_name: str, x: _Q) -> _Q:
        cin = self._channels(x)
        cout, lo_pad = cin + mod.extra, mod.extra // 2
        w = np.zeros((cout, cin, 1, 1), np.int8)
        w[np.arange(cin) + lo_pad, np.arange(cin), 0, 0] = 1
        rq = Requant(mult=np.full(cout, 2, np.int64), shift=np.ones(cout, np.int64),
                     zp_out=x.zp, lo=x.lo, hi=x.hi)
        name = self._fresh(mod_name.replace(".", "_"))
        self.nodes.append(Conv(name=name, input=x.name, weight=w,
                               bias=-x.zp * w.reshape(cout, -1).sum(axis=1).astype(np.int32),
                               multiplier="exact", requant=rq, stride=(mod.stride, mod.stride),
                               padding=(0, 0, 0, 0), groups=1, approximable=False))
        return dataclasses.replace(x, name=name)

    # ---- the walk ------------------------------------------------------------------------
    def run(self) -> Network:
        graph = _Tracer().trace(self.model)
        env: dict[str, object] = {}
        out = None
        for n in graph.nodes:
            args = [env[a.name] if isinstance(a, fx.Node) else a for a in n.args]
            if n.op == "placeholder":
                env[n.name] = torch.zeros(1)
            elif n.op == "call_module":
                env[n.name] = self._module(self.mods[n.target], n.target, args)
            elif n.op in ("call_function", "call_method"):
                env[n.name] = self._function(n, args)
            elif n.op == "output":
                out = args[0]
            else:
                raise ExportError(f"fx node {n.name!r}: unsupported op {n.op!r}")
        if isinstance(out, _Acc):
            self._emit_layer(out, 0.0, 0, None)
        elif not isinstance(out, _Q):
            raise ExportError(f"model output is {type(out).__name__}, expected a layer's logits")
        return self._net_so_far()

    def _module(self, mod: nn.Module, name: str, args: list):
        x = args[0]
        if isinstance(mod, ActQuant):
            return self._quantize(x, mod, name)
        if is_approximable(mod):
            return self._layer(mod, name, x)
        if isinstance(mod, ShortcutA):
            return self._shortcut(mod, name, x)
        if isinstance(mod, (nn.ReLU, nn.ReLU6)):
            return self._relu(x, name, 6.0 if isinstance(mod, nn.ReLU6) else None)
        if isinstance(mod, (nn.Identity, nn.modules.dropout._DropoutNd)):
            return x  # dropout is the identity at inference
        if isinstance(mod, nn.MaxPool2d):
            return self._maxpool(x, name, mod.kernel_size, mod.stride, mod.padding)
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            if mod.output_size not in (1, (1, 1)):
                raise ExportError(f"{name}: only global average pooling (output 1) is supported")
            return self._gap(x, name)
        if isinstance(mod, nn.AvgPool2d):
            if _pair(mod.padding) != (0, 0) or mod.ceil_mode or mod.divisor_override:
                raise ExportError(f"{name}: average pooling without padding, ceil_mode and "
                                  f"divisor_override is supported")
            return self._avgpool(x, name, _pair(mod.kernel_size),
                                 _pair(mod.stride if mod.stride is not None else mod.kernel_size))
        if isinstance(mod, nn.Flatten):
            return self._flatten(x, name)
        if isinstance(mod, nn.BatchNorm2d):
            raise ExportError(f"{name}: BatchNorm must be folded before export "
                              f"(agn.layers.fold_bn)")
        raise ExportError(f"{name}: module {type(mod).__name__} has no integer IR equivalent")

    def _function(self, n: fx.Node, args: list):
        t = n.target
        if t in (F.relu, torch.relu, "relu"):
            return self._relu(args[0], n.name)
        if t is F.relu6:
            return self._relu(args[0], n.name, 6.0)
        if t in (operator.add, torch.add, "add"):
            a, b = args[0], args[1]
            if not (isinstance(a, _Q) and isinstance(b, _Q)):
                raise ExportError(f"{n.name}: residual add of non-quantized operands "
                                  f"({type(a).__name__}, {type(b).__name__})")
            return _AddP(a, b)
        if t in (torch.flatten, "flatten"):
            return self._flatten(args[0], n.name)
        raise ExportError(f"fx node {n.name!r}: function {t!r} has no integer IR equivalent")

    def _relu(self, x, name: str, cap: float | None = None):
        """ReLU (or ReLU6 when ``cap`` is 6: the next quantizer's range must end below it, so the
        integer clip at its top is the cap)."""
        if isinstance(x, (_Acc, _AddP)):
            x.relu, x.cap = True, cap
            return x
        if isinstance(x, _Q) and x.lo >= x.zp:
            return x
        raise ExportError(f"{name}: ReLU on {type(x).__name__} cannot be expressed")

    def _maxpool(self, x, name: str, k, s, p) -> _Q:
        if not isinstance(x, _Q) or x.zp != x.offset:  # zero codes, shifted by rounding
            raise ExportError(f"{name}: max pooling needs a quantized input with zero point 0")
        py, px = _pair(p)
        node = MaxPool(name=self._fresh(name.replace(".", "_")), input=x.name, kernel=_pair(k),
                       stride=_pair(s if s is not None else k), padding=(py, py, px, px))
        self.nodes.append(node)
        return dataclasses.replace(x, name=node.name)

    def _gap(self, x, name: str) -> _Sum:
        if not isinstance(x, _Q) or x.zp != 0:
            raise ExportError(f"{name}: average pooling needs a quantized input with zero point 0")
        _, h, w = self._net_so_far().infos[x.name].shape
        return _Sum(x, h * w)

    def _avgpool(self, x, name: str, kernel: tuple[int, int], stride: tuple[int, int]) -> _Sum:
        if not isinstance(x, _Q) or x.zp != 0:
            raise ExportError(f"{name}: average pooling needs a quantized input with zero point 0")
        return _Sum(x, kernel[0] * kernel[1], kernel, stride)

    def _flatten(self, x, name: str) -> _Q:
        if not isinstance(x, _Q):
            raise ExportError(f"{name}: flatten of a non-quantized value")
        if len(self._net_so_far().infos[x.name].shape) == 1:
            return x
        node = Flatten(name=self._fresh(name.replace(".", "_")), input=x.name)
        self.nodes.append(node)
        return dataclasses.replace(x, name=node.name)


def export(model: nn.Module, input_shape: tuple[int, int, int], name: str = "network", *,
           mean: torch.Tensor | Sequence[float] | None = None,
           std: torch.Tensor | Sequence[float] | None = None) -> Network:
    """The integer network of a quantized (calibrated, BN-folded) ``agn`` model.

    Args:
        model: a model of :mod:`agn.models` whose quantizers are calibrated.
        input_shape: ``(C, H, W)`` of one input sample.
        name: the network's name in the IR.
        mean, std: the per-channel float normalisation of the model's inputs (a data module's
            ``dm.mean``/``dm.std``); recorded in the Input node with its quantisation so
            :func:`deploy.encode_inputs` codes float images as ``model.quant_in`` does. Without
            them the network cannot encode inputs.

    Raises:
        ExportError: a structure the IR cannot express (unfolded BatchNorm, an unquantized layer
            input, an unsupported op), naming the module.
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3:
        raise ExportError(f"export: input_shape expected (C, H, W), got {input_shape!r}")
    if (mean is None) != (std is None):
        raise ExportError("export: expected both mean and std of the input normalisation, or "
                          "neither")
    norm = _per_channel(mean, "mean", shape[0]), _per_channel(std, "std", shape[0])
    if any(t.device.type != "cpu" for t in itertools.chain(model.parameters(), model.buffers())):
        model = copy.deepcopy(model).cpu()  # the integers are computed on the CPU
    was = model.training
    model.eval()
    try:
        return _Exporter(model, (shape[0], shape[1], shape[2]), name, *norm).run()
    finally:
        model.train(was)


def compensate_network(net: Network, compensation: Compensation,
                       offsets: Mapping[str, int] | None = None) -> Network:
    """``net`` (exported without compensation) with each approximable layer's bias lowered by
    its expected accumulated error under the multiplier it carries (error-mean compensation);
    ``offsets`` (layer -> offset, :meth:`agn.ir_rounding.ActivationRounding.layer_offsets`)
    names the layers whose input codes are offset by operand rounding.

    Only biases change, so the NumPy reference, the torch engine and the firmware run the
    compensated network exactly as any other.

    Raises:
        ExportError: a compensated bias beyond int32.
        deploy.IRError: the new biases break the int32 accumulator bound.
    """
    offsets = offsets or {}
    nodes = []
    for n in net.nodes:
        if isinstance(n, (Conv, Linear)) and n.approximable:
            corr = compensation.correction(n.name, n.weight, n.multiplier,
                                           offsets.get(n.name, 0), net.infos[n.input].hi)
            bias = n.bias.astype(np.int64) - corr
            if np.abs(bias).max(initial=0) >= BIAS_LIMIT:
                raise ExportError(f"layer {n.name!r}: compensated bias beyond {BIAS_LIMIT} under "
                                  f"{n.multiplier}")
            n = dataclasses.replace(n, bias=bias.astype(np.int32)) if np.any(corr) else n
        nodes.append(n)
    return Network(tuple(nodes), name=net.name, schema_version=net.schema_version)
