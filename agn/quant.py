"""Fake quantization per docs/integer_semantics.md: uint8 activations with a zero point, int8
weights.

Integer rules (shared with ``deploy`` and the C code):

- Activations: ``q = clamp(round(x / scale) + zp, qmin, qmax)``, real value ``scale * (q - zp)``.
  ``qmin..qmax`` is 0..255 unless a consumer's multiplier narrows it (signed EvoApprox circuits
  take 0..127: ``hwlib.get(spec).network_x_domain()``). After a ReLU the range minimum is 0, so
  ``zp == qmin == 0``; the network input and pre-add tensors are affine (``zp != 0`` in general).
  The observed range always contains 0, so real 0 (the padding value) is exactly integer ``zp``.
- Weights: symmetric per output channel, ``s_w[c] = max|w[c]| / qmax_w``,
  ``w_q = clamp(round(w / s_w), -qmax_w, qmax_w)`` with ``qmax_w = 127`` unless the multiplier's
  weight domain is narrower.
- Bias: ``round(b / (s_x * s_w[c]))`` on the int32 grid.

Rounding is ``torch.round`` (half to even), the same function everywhere in this module, so the
integers returned by :func:`quantize` are exactly those the fake-quant forward used. Gradients are
straight-through (clipped to the range for activations).

:class:`ActQuant` is the explicit activation quantization point (an observer with an EMA of the
range during warm-up and QAT training, then fake quantization); models place one at the input,
after every ReLU and after every residual add and pooling that changes values.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["CALIBRATIONS", "ActQuant", "QuantError", "clip_range", "dequantize", "fake_quant",
           "quantize", "weight_qparams", "fake_quant_weight", "fake_quant_bias"]


class QuantError(ValueError):
    """A quantizer used before calibration or configured with an impossible range."""


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int,
             qmin: int, qmax: int) -> torch.Tensor:
    """Integer values ``clamp(round(x / scale) + zp, qmin, qmax)``, returned in x's float dtype.

    ``scale``/``zero_point`` broadcast against ``x`` (per-tensor scalars or per-channel shapes).
    """
    return torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)


def dequantize(q: torch.Tensor, scale: torch.Tensor,
               zero_point: torch.Tensor | int) -> torch.Tensor:
    """Real values ``scale * (q - zp)``."""
    return (q - zero_point) * scale


class _FakeQuantSTE(torch.autograd.Function):
    """Quantize-dequantize; the gradient passes where ``round(x / s) + zp`` is inside the range."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax):
        q = torch.round(x / scale) + zero_point
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        return dequantize(torch.clamp(q, qmin, qmax), scale, zero_point)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int,
               qmin: int, qmax: int) -> torch.Tensor:
    """Quantize-dequantize (values of :func:`quantize`) with a clipped straight-through gradient."""
    return _FakeQuantSTE.apply(x, scale, zero_point, qmin, qmax)


def weight_qparams(w: torch.Tensor, qmax: int, per_channel: bool = True) -> torch.Tensor:
    """Symmetric scales ``max|w[c]| / qmax`` per output channel (or one ``max|w| / qmax`` for
    all channels when ``per_channel`` is false), shaped to broadcast with ``w``."""
    amax = w.detach().abs().flatten(1).amax(dim=1)
    if not per_channel:
        amax = amax.amax().expand_as(amax)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return scale.view(-1, *([1] * (w.dim() - 1)))


def fake_quant_weight(w: torch.Tensor, qmax: int, per_channel: bool = True, step: int = 1
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w_fq, w_q, s_w)``: fake-quantized weights (STE), their integers and per-channel scales
    (all equal when ``per_channel`` is false).

    ``step > 1`` puts the integers on multiples of ``step`` (the values a multiplier that ignores
    the low weight bits keeps): ``s_w = max|w| / qtop`` with ``qtop`` the largest such multiple
    <= ``qmax``, ``w_q = step * round(w / (s_w * step))``.
    """
    if step > 1:
        top = qmax // step * step
        if top < step:
            raise QuantError(f"fake_quant_weight: step {step} exceeds qmax {qmax}")
        s_w = weight_qparams(w, top, per_channel)
        w_q = quantize(w.detach(), s_w * step, 0, -(top // step), top // step) * step
        return w + (w_q * s_w - w).detach(), w_q, s_w
    s_w = weight_qparams(w, qmax, per_channel)
    w_q = quantize(w.detach(), s_w, 0, -qmax, qmax)
    return w + (w_q * s_w - w).detach(), w_q, s_w


def fake_quant_bias(b: torch.Tensor, s_x: torch.Tensor, s_w: torch.Tensor) -> torch.Tensor:
    """Bias rounded onto the int32 accumulator grid ``s_x * s_w[c]`` (STE)."""
    step = (s_x * s_w.flatten()).detach()
    return b + (torch.round(b.detach() / step) * step - b).detach()


#: Range estimators of the activation observers: the batch maximum, a percentile of the values,
#: the clipping value minimising the quantization MSE, or a learned clip (``learned``: the maximum
#: during the observer warm-up, then trained with the network, :meth:`ActQuant.forward`).
CALIBRATIONS = ("max", "percentile", "mse", "learned")
#: Values a percentile / MSE estimate looks at per batch (an evenly strided subsample).
_SAMPLE = 1 << 16
#: Candidate clipping values of the MSE estimate, as fractions of the batch maximum.
_MSE_GRID = torch.linspace(0.2, 1.0, 81, dtype=torch.float64)


@torch.no_grad()
def clip_range(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, levels: int, method: str,
               percentile: float = 99.99) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lo, hi)`` of one batch under a range estimator, from its min ``lo`` (<= 0) and max
    ``hi`` (>= 0); ``max`` returns them unchanged.

    ``percentile`` takes that percentile of the values for ``hi`` (and 100 - it for a negative
    ``lo``); ``mse`` scales both ends by the factor in 0.2..1 whose fake quantization onto
    ``levels`` codes has the least squared error. Both look at an evenly strided subsample of at
    most 2^18 values, so the estimate is deterministic.
    """
    if method in ("max", "learned"):  # a learned clip starts from the maximum
        return lo, hi
    v = x.detach().flatten()
    if v.numel() > _SAMPLE:
        v = v[:: v.numel() // _SAMPLE + 1]
    v = v.to(torch.float64)
    if method == "percentile":
        p = percentile / 100.0
        new_hi = torch.clamp(torch.quantile(v, p), min=0.0).to(hi.dtype)
        new_lo = torch.clamp(torch.quantile(v, 1.0 - p), max=0.0).to(lo.dtype) if lo < 0 else lo
        return new_lo, torch.where(new_hi > 0, new_hi, hi)
    if method != "mse":
        raise QuantError(f"range estimator {method!r}: expected one of {list(CALIBRATIONS)}")
    errs = []
    for t in _MSE_GRID:
        a, b = float(lo) * float(t), float(hi) * float(t)
        scale = max(b - a, 1e-12) / (levels - 1)
        q = torch.clamp(torch.round((v - a) / scale), 0, levels - 1) * scale + a
        errs.append(float(((q - v) ** 2).mean()))
    f = float(_MSE_GRID[int(np.argmin(errs))])
    return lo * f, hi * f


def _clip_gradient(x: torch.Tensor, clip: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
    """Zero in value; its gradient reaches the clip of an unsigned quantizer (codes
    ``qmin + round(x / s)``, ``s = clip / (qmax - qmin)``) as PACT's where ``x`` saturates (1)
    and LSQ's inside the range (``(round(x / s) - x / s) / levels``)."""
    levels = qmax - qmin
    s = torch.clamp(clip, min=1e-8) / levels
    t = x.detach() / s
    r = t + (torch.round(t) - t).detach()            # round with a straight-through gradient
    sur = torch.clamp(r, 0, levels) * s
    return sur - sur.detach()


class ActQuant(nn.Module):
    """An explicit activation quantization point: observer plus uint8 fake quantization.

    Buffers (all in the state dict): ``enabled`` (fake-quantize when true, identity otherwise),
    ``min_val``/``max_val`` (observed range, always containing 0), ``qmin``/``qmax`` (integer
    range; narrowed by :func:`agn.layers.approximate_` for multipliers with a narrower activation
    domain), ``calibrated``. :meth:`qparams` gives ``(scale, zero_point)`` derived from them.

    While ``observe`` is true (warm-up and QAT training) every training-mode forward updates an EMA
    of the batch min/max (the first batch sets it).

    Args:
        unsigned: True after a ReLU: the range minimum is pinned to 0, so ``zero_point == qmin``.
        momentum: EMA factor of the range observer.

    ``calibration`` (one of :data:`CALIBRATIONS`, default ``max``) and ``percentile`` choose how
    each batch's range is estimated (:func:`clip_range`); they are settings of the run, not state.

    A learned range (:meth:`learn_range`, unsigned quantizers: PACT's clip, LSQ's gradient
    inside the range) adds the parameter ``clip``: the warm-up sets it to the observed maximum,
    and while the quantizer observes (QAT) each training forward copies it into ``max_val`` and
    fake-quantizes with the usual integers, its gradient reaching ``clip``. Everything else
    (evaluation, :meth:`qparams`, export) reads ``max_val``, so the exported network is the
    fake-quant model's exactly.
    """

    def __init__(self, unsigned: bool = True, momentum: float = 0.1) -> None:
        super().__init__()
        self.unsigned = unsigned
        self.momentum = momentum
        self.calibration = "max"
        self.percentile = 99.99
        self.observe = True
        self.register_buffer("enabled", torch.tensor(False))
        self.register_buffer("calibrated", torch.tensor(False))
        self.register_buffer("min_val", torch.tensor(0.0))
        self.register_buffer("max_val", torch.tensor(0.0))
        self.register_buffer("qmin", torch.tensor(0))
        self.register_buffer("qmax", torch.tensor(255))

    def learn_range(self) -> None:
        """Give an unsigned quantizer the trainable clip of ``calibration: learned`` (idempotent;
        signed quantizers keep observing the range)."""
        if self.unsigned and "clip" not in self._parameters:
            self.clip = nn.Parameter(self.max_val.detach().clone())

    @property
    def learned(self) -> bool:
        """Whether the range is a trained clip (:meth:`learn_range`)."""
        return "clip" in self._parameters

    def set_range(self, qmin: int, qmax: int) -> None:
        """Set the integer range (e.g. 0..127 for signed EvoApprox circuits)."""
        if not (0 <= qmin < qmax <= 255):
            raise QuantError(f"ActQuant range: expected 0 <= qmin < qmax <= 255, got "
                             f"({qmin}, {qmax})")
        self.qmin.fill_(qmin)
        self.qmax.fill_(qmax)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold the range of ``x`` into the observer."""
        lo = torch.clamp(x.min(), max=0.0) if not self.unsigned else x.new_tensor(0.0)
        hi = torch.clamp(x.max(), min=0.0)
        if self.calibration != "max":
            lo, hi = clip_range(x, lo, hi, int(self.qmax) - int(self.qmin) + 1, self.calibration,
                                self.percentile)
        if bool(self.calibrated):
            self.min_val.lerp_(lo, self.momentum)
            self.max_val.lerp_(hi, self.momentum)
        else:
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            self.calibrated.fill_(True)
        if self.learned:  # the warm-up's maximum is where the clip starts
            self.clip.data.copy_(self.max_val)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, zero_point)`` as 0-d float tensors (the zero point holds an integer)."""
        if not bool(self.calibrated):
            raise QuantError("ActQuant: used for quantization before calibration; run the "
                             "observer warm-up (agn.layers.calibrate) first")
        qmin, qmax = int(self.qmin), int(self.qmax)
        span = torch.clamp(self.max_val - self.min_val, min=1e-8)
        scale = span / (qmax - qmin)
        zp = torch.clamp(qmin - torch.round(self.min_val / scale), qmin, qmax)
        return scale, zp

    def int_range(self) -> tuple[int, int]:
        """``(qmin, qmax)`` as Python ints."""
        return int(self.qmin), int(self.qmax)

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes of ``x`` (float dtype holding integers in qmin..qmax)."""
        scale, zp = self.qparams()
        return quantize(x, scale, zp, *self.int_range())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        learning = self.learned and self.observe and self.training and bool(self.enabled)
        if learning:
            with torch.no_grad():
                self.max_val.copy_(torch.clamp(self.clip, min=1e-8))
        elif self.observe and self.training:
            self.update(x)
        if not bool(self.enabled):
            return x
        scale, zp = self.qparams()
        out = fake_quant(x, scale, zp, *self.int_range())
        return out + _clip_gradient(x, self.clip, *self.int_range()) if learning else out

    def extra_repr(self) -> str:
        if not bool(self.calibrated):
            return f"unsigned={self.unsigned}, uncalibrated"
        scale, zp = self.qparams()
        return (f"unsigned={self.unsigned}, enabled={bool(self.enabled)}, "
                f"scale={float(scale):.4g}, zero_point={int(zp)}, range={self.int_range()}")
