"""Approximable conv and linear layers: float, fake-quant, learned-noise and approximate modes.

``ApproxConv2d(nn.Conv2d)`` and ``ApproxLinear(nn.Linear)`` keep torch's parameters and
state-dict keys (``weight``, ``bias``) and add:

- ``sigma`` (parameter): the learned relative noise level of the noise stage (its sign is ignored):
  a scalar (one per layer), or one per output channel (shape ``(C_out,)``, see
  :meth:`~_Approximable.set_sigma_shape`); a checkpoint's shape is adopted on load.
- ``mode_id`` (buffer): the :class:`~agn.layers.mode.Mode`; ``spec`` (the hwlib multiplier spec
  string, or the layer's blocks: one multiplier per output-channel group or (output, input)
  block, :mod:`hwlib.blocks`) travels in the module's extra state, so checkpoints carry mode,
  spec and sigma.
- ``input_quant``: the :class:`~agn.quant.ActQuant` that defines the layer's integer input
  (scale, zero point). A standalone layer owns one (submodule ``act_in``, applied in forward);
  models :meth:`bind_input_quant` each layer to the explicit quantization point in front of it,
  which the model applies itself (the layer then only reads its parameters).

Stable API for the error model and export (do not change without telling them):

- ``integer_operands(x) -> (x_q, w_q, zero_point)``: ``x`` is the float input exactly as the layer
  receives it; ``x_q`` (torch.uint8, before padding, same shape as ``x``) and ``w_q`` (torch.int8,
  the weight's shape) are the integers the approx mode feeds the engine; ``zero_point`` is a
  Python int (the padding value).
- ``macs(input_shape) -> int``: multiplications per sample (batch dim excluded); ``last_macs``
  records it on every quantized forward. ``fan_in``: products per output element.
- ``weight_scales() -> Tensor (C_out,)``, ``input_quant.qparams()``, ``multiplier``.

Integer semantics (docs/integer_semantics.md): the approx mode pads ``x_q`` with the input zero
point inside the engine (``agn.sim``), so padded taps go through the multiplier, and dequantizes
``s_x * s_w[c] * (acc - zp * sum(w_q[c])) + bias`` with the bias on the int32 grid.
"""
from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

import hwlib
from agn.layers.mode import Mode
from agn.quant import ActQuant, fake_quant_bias, fake_quant_weight
from hwlib.blocks import LayerSpec, as_blocks, check_blocks, layer_specs

__all__ = ["ApproxConv2d", "ApproxLinear", "LayerError", "is_approximable"]


class LayerError(ValueError):
    """An approximable layer asked for something its configuration cannot do."""


def _engine():  # imported on use: the engine is heavy and optional until approx mode runs
    return importlib.import_module("agn.sim")


def _blocks():
    return importlib.import_module("agn.sim.blocks")


class _Approximable:
    """Behaviour shared by the approximable layers (mixed in before the torch layer class)."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init_approx(self, sigma_init: float = 0.1) -> None:
        self.register_buffer("mode_id", torch.tensor(int(Mode.FLOAT)))
        self.sigma = nn.Parameter(torch.tensor(float(sigma_init)))
        self.act_in = ActQuant(unsigned=False)
        self._bound: tuple[ActQuant, ...] = ()
        self.spec: LayerSpec = "exact"
        self.last_macs: int | None = None
        # One weight scale for all channels instead of one per channel: set on the classifier
        # producing logits, so its int32 logits rank exactly like the real-valued ones.
        self.per_channel = True
        # Error-mean compensation (agn.layers.compensate_): int64 (C_out,) accumulator units
        # subtracted from the bias in approximate mode and at export; None = off.
        self.bias_correction: torch.Tensor | None = None
        # Operand rounding (agn.layers.round_operands_): activation code offset added before the
        # multiplier (its truncation of low bits then rounds) and the weight grid; 0 / 1 = off.
        self.x_offset = 0
        self.w_step = 1

    # ---- configuration -----------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        """The current mode."""
        return Mode(int(self.mode_id))

    def set_mode(self, mode: Mode | str) -> None:
        """Switch the layer's mode (see :class:`Mode`)."""
        m = Mode.parse(mode)
        if m is Mode.APPROX:
            self._check_engine_geometry()
        if "act_in" in self._modules:
            if m is not Mode.FLOAT:
                self.act_in.qparams()  # raises QuantError when the observer never saw data
            self.act_in.enabled.fill_(m is not Mode.FLOAT)
        self.mode_id.fill_(int(m))

    @property
    def multiplier(self) -> hwlib.Multiplier:
        """The hwlib multiplier of the approx mode (LayerError when the layer holds blocks)."""
        if not isinstance(self.spec, str):
            raise LayerError(f"{type(self).__name__}: the layer holds {len(self.spec)} blocks "
                             f"with their own multipliers; read .multipliers")
        return hwlib.get(self.spec)

    @property
    def multipliers(self) -> tuple[hwlib.Multiplier, ...]:
        """The distinct hwlib multipliers of the approx mode (one unless the layer holds
        blocks)."""
        return tuple(hwlib.get(s) for s in layer_specs(self.spec))

    def set_multiplier(self, spec: str | hwlib.Multiplier | LayerSpec) -> None:
        """Set the multiplier: a spec string (resolved by hwlib) or a Multiplier object; an
        object hwlib cannot name (an anonymous table) is adopted by content as
        ``table:sha256:<hex>`` (:mod:`hwlib.anonymous`), a spec that travels with the exported
        network, so the engine, export and firmware look up the same table. Or blocks
        (:class:`hwlib.blocks.Block` or their JSON objects) tiling the weight's output and
        input channels, each spec resolved likewise. A changed multiplier clears the bias
        correction and the operand rounding (both were chosen for the previous one).

        Raises:
            AssignmentError: blocks that do not tile the weight's channels.
        """
        if isinstance(spec, (tuple, list)):
            blocks = as_blocks(spec, f"{type(self).__name__} blocks")
            check_blocks(blocks, self.weight.shape[0], self.weight.shape[1],
                         f"{type(self).__name__} blocks")
            new: str | tuple = tuple(
                dataclasses.replace(b, multiplier=hwlib.get(b.multiplier).spec) for b in blocks)
        else:
            new = (hwlib.get(spec) if isinstance(spec, str) else hwlib.anonymous.adopt(spec)).spec
        if new != self.spec:
            self.bias_correction = None
            self.x_offset, self.w_step = 0, 1
        self.spec = new

    @property
    def w_qmax(self) -> int:
        """Largest weight magnitude: 127, or less if the multiplier's weight domain is narrower."""
        return int(min(min(127, m.w_domain.hi, -m.w_domain.lo) for m in self.multipliers))

    def bind_input_quant(self, quant: ActQuant) -> None:
        """Read the input's (scale, zero point) from ``quant``, which the model applies itself."""
        if not isinstance(quant, ActQuant):
            raise TypeError(f"bind_input_quant: expected an agn.quant.ActQuant, got "
                            f"{type(quant).__name__}")
        if "act_in" in self._modules:
            del self._modules["act_in"]
        self._bound = (quant,)

    @property
    def input_quant(self) -> ActQuant:
        """The quantizer defining this layer's integer input."""
        return self._bound[0] if self._bound else self._modules["act_in"]

    def get_extra_state(self) -> dict:
        spec = self.spec if isinstance(self.spec, str) else [b.to_json() for b in self.spec]
        state: dict = {"spec": spec, "per_channel": self.per_channel}
        if self.bias_correction is not None:
            state["bias_correction"] = self.bias_correction.tolist()
        if (self.x_offset, self.w_step) != (0, 1):
            state["rounding"] = [self.x_offset, self.w_step]
        return state

    def set_operand_rounding(self, x_offset: int = 0, w_step: int = 1) -> None:
        """Round operands onto the values the multiplier keeps (``0, 1``: off).

        Args:
            x_offset: added to the activation codes (clipped at the quantizer's top) before the
                multiplier, whose truncation of ``log2(2 * x_offset)`` low bits then rounds; the
                padding value becomes ``zp + x_offset`` and the zero-point correction stays
                ``zp * sum(w)``. A power of two below 128, or 0.
            w_step: weights are quantized onto multiples of ``w_step`` (a power of two <= 64).

        Raises:
            LayerError: a value that is not such a power of two.
        """
        if x_offset < 0 or x_offset >= 128 or (x_offset & (x_offset - 1)):
            raise LayerError(f"x_offset: expected 0 or a power of two below 128, got {x_offset}")
        if w_step < 1 or w_step > 64 or (w_step & (w_step - 1)):
            raise LayerError(f"w_step: expected a power of two in 1..64, got {w_step}")
        self.x_offset, self.w_step = int(x_offset), int(w_step)

    def set_bias_correction(self, correction: Sequence[int] | torch.Tensor | None) -> None:
        """Set (None: clear) the per-output-channel integer error-mean compensation subtracted
        from the accumulator bias in approximate mode and at export.

        Raises:
            LayerError: not one integer per output channel.
        """
        if correction is None:
            self.bias_correction = None
            return
        c = torch.as_tensor(correction)
        if c.dim() != 1 or c.numel() != self.weight.shape[0] or c.is_floating_point():
            raise LayerError(f"bias_correction: expected {self.weight.shape[0]} integers (one "
                             f"per output channel), got {c.dtype} {tuple(c.shape)}")
        self.bias_correction = c.to(torch.int64).clone()

    def set_extra_state(self, state: dict) -> None:
        """Restore the multiplier and the weight-scale mode; a checkpoint written before
        ``per_channel`` was saved keeps the layer's own setting (as built by ``build_model``)."""
        self.set_multiplier(state["spec"])
        per_channel = state.get("per_channel", self.per_channel)
        if not isinstance(per_channel, bool):
            raise LayerError(f"saved per_channel: expected a bool, got {per_channel!r}")
        self.per_channel = per_channel
        self.set_bias_correction(state.get("bias_correction"))
        self.set_operand_rounding(*state.get("rounding", (0, 1)))

    # ---- learned noise level -------------------------------------------------------------
    @property
    def channel_sigmas(self) -> bool:
        """Whether the layer learns one sigma per output channel."""
        return self.sigma.dim() == 1

    def set_sigma_shape(self, per_channel: bool) -> None:
        """One sigma per output channel (``per_channel``) or one for the layer, in place (the
        parameter object stays, so optimizers holding it keep it); a new shape takes the mean of
        the current |sigma|."""
        shape = (self.weight.shape[0],) if per_channel else ()
        if tuple(self.sigma.shape) != shape:
            with torch.no_grad():
                value = self.sigma.detach().abs().mean()
                self.sigma.data = value.expand(shape).clone()

    @property
    def layer_sigma(self) -> float:
        """The layer's |sigma|; with per-channel sigmas their quadratic mean
        ``sqrt(mean_c sigma_c^2)`` (the same total noise power over the layer's outputs)."""
        s = self.sigma.detach().abs().double()
        return float(s) if not s.dim() else float(torch.sqrt(torch.mean(s * s)))

    def sigma_reward(self, sigma_max: float) -> torch.Tensor:
        """``min(|sigma|, sigma_max)``; per channel, the mean over channels (each channel
        weighted by its share ``1 / C_out`` of the layer's multiplications), accumulated in
        float64 so equal channel sigmas give exactly the per-layer value."""
        capped = torch.clamp(self.sigma.abs(), max=sigma_max)
        if not capped.dim():
            return capped
        return capped.double().mean().to(capped.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "sigma")
        if isinstance(saved, torch.Tensor) and saved.dim() <= 1 \
                and saved.shape != self.sigma.shape:
            if saved.dim() == 1 and saved.shape[0] != self.weight.shape[0]:
                raise LayerError(f"saved {prefix}sigma: {saved.shape[0]} channel sigmas for "
                                 f"{self.weight.shape[0]} output channels")
            self.set_sigma_shape(saved.dim() == 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[misc]

    # ---- shapes --------------------------------------------------------------------------
    def weight_scales(self) -> torch.Tensor:
        """Per-output-channel weight scales (C_out,) of the current weights."""
        return self._weight_ints()[1].flatten()

    def _weight_ints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_q int8, s_w)`` of the current weights, cached until the weights change (the
        engine caches its weight transforms per w_q tensor, so eval loops reuse them)."""
        key = (self.weight._version, self.weight.data_ptr(), self.w_qmax, self.per_channel,
               self.w_step)
        cached = getattr(self, "_wq_cache", None)
        if cached is None or cached[0] != key:
            _, w_q, s_w = fake_quant_weight(self.weight.detach(), self.w_qmax, self.per_channel,
                                            self.w_step)
            cached = (key, w_q.to(torch.int8), s_w)
            self._wq_cache = cached
        return cached[1], cached[2]

    # ---- forward -------------------------------------------------------------------------
    def _bias_shape(self, b: torch.Tensor) -> torch.Tensor:
        return b

    def _own_input(self, x: torch.Tensor) -> torch.Tensor:
        return self._modules["act_in"](x) if "act_in" in self._modules else x

    def integer_operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(x_q uint8, w_q int8, zero_point)`` exactly as the approx mode feeds the engine."""
        with torch.no_grad():
            x_q = self.input_quant.to_int(x.detach()).to(torch.uint8)
            w_q = self._weight_ints()[0]
            zp = int(self.input_quant.qparams()[1])
        return x_q, w_q, zp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.mode
        if mode is Mode.APPROX and x.device.type != "cpu":
            raise LayerError(f"{type(self).__name__}: approximate mode runs the bit-exact engine "
                             f"on the CPU only, got an input on {x.device}; move the model and "
                             f"its inputs to the CPU (model.cpu()), or train with "
                             f"accelerator='cpu'")
        x = self._own_input(x)
        if mode is Mode.FLOAT:
            return self._product(x, self.weight, self.bias)
        self.last_macs = self.macs(x.shape)
        s_x, zp = self.input_quant.qparams()
        w_q, s_w = self._weight_ints()
        w_fq = self.weight + (w_q * s_w - self.weight).detach()
        y = self._product(x, w_fq, None)
        if mode is Mode.NOISE and self.training:
            sigma = self.sigma.abs()
            if sigma.dim():  # one per output channel
                sigma = sigma.view((1, -1) + (1,) * (y.dim() - 2))
            y = y + torch.randn_like(y) * sigma * y.detach().std()
        elif mode is Mode.APPROX:
            x_q = self.input_quant.to_int(x.detach())
            if self.x_offset:
                x_q = torch.clamp(x_q + self.x_offset, max=self.input_quant.int_range()[1])
            acc = self._approx_acc(x_q.to(torch.uint8), w_q, int(zp) + self.x_offset)
            corr = zp * w_q.flatten(1).sum(dim=1, dtype=y.dtype)
            if self.bias_correction is not None:
                corr = corr + self.bias_correction.to(y.dtype)
            shape = (1, -1) + (1,) * (y.dim() - 2) if y.dim() > 2 else (-1,)
            s = (s_x * s_w.flatten()).view(shape)
            approx = s * (acc.to(y.dtype) - corr.view(shape))
            y = y + (approx - y).detach()
        if self.bias is not None:
            y = y + self._bias_shape(fake_quant_bias(self.bias, s_x, s_w))
        return y

    def extra_repr(self) -> str:
        base = super().extra_repr()
        sigma = self.layer_sigma
        path = "torch" if self.mode is not Mode.APPROX else f"agn.sim[{self._engine_path()}]"
        spec = self.spec if isinstance(self.spec, str) else \
            f"{len(self.spec)} blocks of {'/'.join(layer_specs(self.spec))}"
        return (f"{base}, spec={spec}, sigma={sigma:.4g}, mode={self.mode.name.lower()}, "
                f"engine={path}")

    def _engine_path(self) -> str:
        if not isinstance(self.spec, str):
            return "blocks"
        w_q = self._weight_ints()[0]
        w4 = w_q if w_q.dim() == 4 else w_q[:, :, None, None]
        return str(_engine().describe(self.multiplier, w4, getattr(self, "stride", 1),
                                      getattr(self, "groups", 1)))


class ApproxConv2d(_Approximable, nn.Conv2d):
    """``nn.Conv2d`` whose products can be fake-quantized, noisy or approximate (any groups)."""

    def __init__(self, *args, sigma_init: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_approx(sigma_init)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, sigma_init: float = 0.1) -> ApproxConv2d:
        """An ApproxConv2d (float mode) sharing ``conv``'s geometry and a copy of its weights."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"ApproxConv2d.from_float: expected nn.Conv2d, got "
                            f"{type(conv).__name__}")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                  sigma_init=sigma_init, device=conv.weight.device, dtype=conv.weight.dtype)
        new.load_state_dict(conv.state_dict(), strict=False)
        return new

    def to_float(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the same weights (mode, sigma and spec dropped)."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride,
                         self.padding, self.dilation, self.groups, self.bias is not None,
                         self.padding_mode)
        conv.load_state_dict({k: v for k, v in self.state_dict().items()
                              if k in ("weight", "bias")})
        return conv

    @property
    def fan_in(self) -> int:
        """Products per output element: C_in/groups * kh * kw."""
        return self.in_channels // self.groups * self.kernel_size[0] * self.kernel_size[1]

    def output_size(self, input_shape: Sequence[int]) -> tuple[int, int]:
        """Output (H, W) for an input of shape (..., H, W)."""
        if isinstance(self.padding, str):
            raise LayerError(f"{type(self).__name__}: padding={self.padding!r} is not supported "
                             f"for quantized modes; give explicit integers")
        h, w = int(input_shape[-2]), int(input_shape[-1])
        out = []
        for size, k, s, p, d in zip((h, w), self.kernel_size, self.stride, self.padding,
                                    self.dilation):
            out.append((size + 2 * p - d * (k - 1) - 1) // s + 1)
        return out[0], out[1]

    def macs(self, input_shape: Sequence[int]) -> int:
        """Multiplications per sample: C_out * C_in/groups * kh * kw * H_out * W_out."""
        ho, wo = self.output_size(input_shape)
        return self.out_channels * self.fan_in * ho * wo

    def _product(self, x, w, b):
        return self._conv_forward(x, w, b)

    def _bias_shape(self, b):
        return b.view(1, -1, 1, 1)

    def _check_engine_geometry(self) -> None:
        if self.dilation != (1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise LayerError(f"ApproxConv2d: approx mode needs dilation 1, padding_mode 'zeros' "
                             f"and integer padding; got dilation={self.dilation}, padding_mode="
                             f"{self.padding_mode!r}, padding={self.padding!r}")

    def _approx_acc(self, x_q, w_q, zp):
        if not isinstance(self.spec, str):
            return _blocks().blocked_conv2d(x_q, w_q, self.spec, self.stride, self.padding,
                                            self.groups, zp)
        return _engine().approx_conv2d(x_q, w_q, self.multiplier, self.stride, self.padding,
                                       self.groups, zp)


class ApproxLinear(_Approximable, nn.Linear):
    """``nn.Linear`` whose products can be fake-quantized, noisy or approximate."""

    def __init__(self, *args, sigma_init: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_approx(sigma_init)

    @classmethod
    def from_float(cls, linear: nn.Linear, sigma_init: float = 0.1) -> ApproxLinear:
        """An ApproxLinear (float mode) with a copy of ``linear``'s weights."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"ApproxLinear.from_float: expected nn.Linear, got "
                            f"{type(linear).__name__}")
        new = cls(linear.in_features, linear.out_features, linear.bias is not None,
                  sigma_init=sigma_init, device=linear.weight.device, dtype=linear.weight.dtype)
        new.load_state_dict(linear.state_dict(), strict=False)
        return new

    def to_float(self) -> nn.Linear:
        """A plain ``nn.Linear`` with the same weights (mode, sigma and spec dropped)."""
        lin = nn.Linear(self.in_features, self.out_features, self.bias is not None)
        lin.load_state_dict({k: v for k, v in self.state_dict().items()
                             if k in ("weight", "bias")})
        return lin

    @property
    def fan_in(self) -> int:
        """Products per output element: in_features."""
        return self.in_features

    def macs(self, input_shape: Sequence[int]) -> int:
        """Multiplications per sample: in * out * (leading non-batch dims)."""
        lead = 1
        for d in input_shape[1:-1]:
            lead *= int(d)
        return self.in_features * self.out_features * lead

    def _product(self, x, w, b):
        return F.linear(x, w, b)

    def _check_engine_geometry(self) -> None:
        return None

    def _approx_acc(self, x_q, w_q, zp):
        if x_q.dim() != 2:
            raise LayerError(f"ApproxLinear: approx mode expects (N, in_features) inputs, got "
                             f"shape {tuple(x_q.shape)}")
        if not isinstance(self.spec, str):
            return _blocks().blocked_linear(x_q, w_q, self.spec)
        return _engine().approx_linear(x_q, w_q, self.multiplier)


def is_approximable(module: nn.Module) -> bool:
    """True for the layers of this module (ApproxConv2d, ApproxLinear)."""
    return isinstance(module, _Approximable)
