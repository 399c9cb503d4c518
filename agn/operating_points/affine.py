"""Per-operating-point output affines of the approximable layers, shared weights otherwise.

With BatchNorm folded into the conv/linear weights, a per-point BatchNorm is a per-point,
per-channel scale and offset of each layer's output: ``y_p = gamma_p * y + beta_p``. Each layer
gets a registered :class:`PointAffine` submodule (``<layer>.point_affine``, so its parameters
are optimised and checkpointed, unlike a plain list of copies) holding ``log_gamma`` and
``beta`` for every point, and a forward hook applying the active point's. The exporter turns
the active point's affine into the layer's integer bias and requantisation
(:func:`agn.export.export`), so the integer network of point p is an export with p active.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from agn.layers import approx_layers, compensate_

AFFINE = "point_affine"


class PointAffine(nn.Module):
    """``gamma = exp(log_gamma[p])`` (so positive) and ``beta[p]`` per output channel for each of
    ``n_points`` points; ``active`` (a buffer) selects the point. ``scale=False`` keeps gamma at 1
    (a layer whose int32 outputs are the logits has no requantisation to carry it). With
    ``compensate`` a buffer ``correction`` (n_points, C) holds each point's error-mean bias
    correction (int64 accumulator units, :func:`agn.layers.compensate_`), checkpointed with the
    affines and put on the layer when its point is selected."""

    active: torch.Tensor
    correction: torch.Tensor | None

    def __init__(self, n_points: int, channels: int, scale: bool = True,
                 compensate: bool = False) -> None:
        super().__init__()
        if n_points < 1 or channels < 1:
            raise ValueError(f"PointAffine: expected n_points >= 1 and channels >= 1, got "
                             f"{n_points}, {channels}")
        self.log_gamma = nn.Parameter(torch.zeros(n_points, channels), requires_grad=scale)
        self.beta = nn.Parameter(torch.zeros(n_points, channels))
        self.register_buffer("active", torch.tensor(0))
        self.register_buffer("correction", torch.zeros(n_points, channels, dtype=torch.int64)
                             if compensate else None)

    @property
    def n_points(self) -> int:
        """Number of points."""
        return int(self.beta.shape[0])

    def select(self, point: int) -> None:
        """Make ``point`` the active one."""
        if not 0 <= point < self.n_points:
            raise ValueError(f"operating point {point}: expected 0..{self.n_points - 1}")
        self.active.fill_(point)

    def gamma_beta(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The active point's ``(gamma, beta)``, each (C,)."""
        p = int(self.active)
        return self.log_gamma[p].exp(), self.beta[p]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma_beta()
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return y * gamma.view(shape) + beta.view(shape)


def affine_of(layer: nn.Module) -> PointAffine:
    """The layer's PointAffine (ValueError when it has none)."""
    a = layer._modules.get(AFFINE)
    if not isinstance(a, PointAffine):
        raise ValueError(f"layer {type(layer).__name__} has no operating points; call "
                         f"attach_points first")
    return a


def _apply(layer: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return affine_of(layer)(output)


def attach_points(model: nn.Module, n_points: int, compensate: bool = False) -> nn.Module:
    """Give every approximable layer a :class:`PointAffine` of ``n_points`` points (identity at
    start, with per-point bias corrections if ``compensate``); the last layer, which produces
    int32 logits, gets offsets only. In place; returns the model. Call before loading a
    checkpoint that holds them."""
    layers = approx_layers(model)
    for i, (_, layer) in enumerate(layers):
        if AFFINE in layer._modules:
            raise ValueError(f"attach_points: the model already has operating points "
                             f"({affine_of(layer).n_points})")
        channels = int(layer.weight.shape[0])  # type: ignore[index]
        layer.add_module(AFFINE, PointAffine(n_points, channels, scale=i < len(layers) - 1,
                                             compensate=compensate))
        layer.register_forward_hook(_apply)
    return model


def point_affines(model: nn.Module) -> dict[str, PointAffine]:
    """``{layer name: PointAffine}`` of a model with points attached (empty otherwise)."""
    return {n: affine_of(layer) for n, layer in approx_layers(model)
            if AFFINE in layer._modules}


def select_point(model: nn.Module, point: int, assignment: Mapping[str, str]) -> nn.Module:
    """Make ``point`` active: its affines in every layer, its multipliers (``assignment``
    names every approximable layer) and, with compensation, its bias corrections."""
    layers = dict(approx_layers(model))
    missing = sorted(set(layers) - set(assignment))
    if missing:
        raise ValueError(f"operating point {point}: no multiplier for layers {missing}")
    for name, layer in layers.items():
        layer.set_multiplier(assignment[name])  # type: ignore[operator]
        a = affine_of(layer)
        a.select(point)
        if a.correction is not None:
            c = a.correction[point]
            layer.set_bias_correction(c if bool(c.any()) else None)  # type: ignore[operator]
    return model


def compensate_points(model: nn.Module, assignments: Sequence[Mapping[str, str]],
                      pmfs: Mapping[str, np.ndarray]) -> nn.Module:
    """Fill every point's bias corrections (attached with ``compensate``) from the layers'
    input distributions ``pmfs`` under the point's multipliers and the current weights."""
    for p, asg in enumerate(assignments):
        select_point(model, p, asg)
        compensate_(model, pmfs)
        for _, layer in approx_layers(model):
            a = affine_of(layer)
            if a.correction is None:
                raise ValueError("compensate_points: the points were attached without "
                                 "compensation")
            c = layer.bias_correction
            a.correction[p] = 0 if c is None else c
    return select_point(model, 0, assignments[0])


def extra_parameters(model: nn.Module) -> int:
    """Trainable parameters one point adds: its gammas and betas over all layers."""
    return sum(int(a.beta.shape[1]) * (1 + int(a.log_gamma.requires_grad))
               for a in point_affines(model).values())


def base_parameters(model: nn.Module, skip: Sequence[str] = (AFFINE, "sigma")) -> int:
    """Parameters of the network itself (weights and biases; no affines, no sigmas)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if not any(part in n.split(".") for part in skip))
