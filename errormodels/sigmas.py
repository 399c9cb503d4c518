"""Reading ``sigmas.json`` (the noise training's learned sigma per layer) and checking it.

Version 1 (no ``version`` field): per layer ``name``, ``sigma`` and optionally
``multiplications`` and ``fan_in``. Version 2 adds, for a layer whose noise training learned one
sigma per output channel, ``channel_sigmas`` (its channels' |sigma|; ``sigma`` is then their
quadratic mean). Writers write version 1 when no layer has channel sigmas
(:func:`sigmas_document`), so per-layer files stay as they were.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from errormodels.errors import SigmasError, read_json
from errormodels.stats import OperandStats

SIGMAS_FILE = "sigmas.json"
SIGMAS_VERSION = 2


@dataclass(frozen=True)
class LayerSigma:
    """One layer's learned noise level.

    Attributes:
        name: module name of the layer.
        sigma: learned sigma_l, relative to the std of the layer's output (its sign is ignored).
        multiplications: multiplications per input sample, when the file gives it.
        fan_in: products per output element, when the file gives it.
        channel_sigmas: one learned sigma per output channel (signs ignored), when the noise
            training learned them; ``sigma`` is then their quadratic mean.
    """

    name: str
    sigma: float
    multiplications: int | None = None
    fan_in: int | None = None
    channel_sigmas: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SigmasError(f"sigmas: layer name must be a non-empty string, got {self.name!r}")
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) \
                or not math.isfinite(self.sigma):
            raise SigmasError(f"sigmas: layer {self.name!r} has sigma={self.sigma!r}; expected a "
                              f"finite number (a NaN sigma means the noise training diverged)")
        for key in ("multiplications", "fan_in"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise SigmasError(f"sigmas: layer {self.name!r} has {key}={v!r}; expected a "
                                  f"positive integer")
        c = self.channel_sigmas
        if c is not None and (not isinstance(c, tuple) or not c or not all(
                not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
                for v in c)):
            raise SigmasError(f"sigmas: layer {self.name!r} has channel_sigmas={c!r}; expected a "
                              f"non-empty list of finite numbers, one per output channel")

    def scaled(self, factor: float) -> LayerSigma:
        """The same layer with its sigma (and channel sigmas) multiplied by ``factor``."""
        c = self.channel_sigmas
        return dataclasses.replace(self, sigma=self.sigma * factor,
                                   channel_sigmas=None if c is None else
                                   tuple(v * factor for v in c))


def channel_tolerances(sigma: LayerSigma, tolerance: float, out_std: float,
                       channels: int) -> np.ndarray:
    """Tolerance per output channel, float64 (C,): ``|sigma_c| * out_std`` from the layer's
    channel sigmas, else the layer's ``tolerance`` for every channel.

    Raises:
        SigmasError: the number of channel sigmas is not ``channels``.
    """
    if sigma.channel_sigmas is None:
        return np.full(channels, float(tolerance))
    if len(sigma.channel_sigmas) != channels:
        raise SigmasError(f"layer {sigma.name!r}: {len(sigma.channel_sigmas)} channel sigmas for "
                          f"{channels} output channels")
    return np.abs(np.asarray(sigma.channel_sigmas, np.float64)) * float(out_std)


def sigmas_document(layers: Sequence[dict[str, Any]],
                    fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``sigmas.json`` document of ``layers`` (rows as :func:`parse_sigmas` reads them) and
    the run's ``fields`` (lambda, sigma cap, seed...): version 2 when a layer has
    ``channel_sigmas``, else the unversioned version-1 layout."""
    head = {"version": SIGMAS_VERSION} if any("channel_sigmas" in r for r in layers) else {}
    return {**head, **(fields or {}), "layers": list(layers)}


def parse_sigmas(obj: Any, where: str = "sigmas") -> list[LayerSigma]:
    """Layers from decoded JSON: a list of entries or ``{"layers": [...]}``."""
    version = obj.get("version", 1) if isinstance(obj, dict) else 1
    if isinstance(version, bool) or version not in range(1, SIGMAS_VERSION + 1):
        raise SigmasError(f"{where}: version {version!r} is not one this toolkit reads (1.."
                          f"{SIGMAS_VERSION}); a newer toolkit wrote it")
    rows = obj.get("layers") if isinstance(obj, dict) else obj
    if not isinstance(rows, list) or not rows:
        raise SigmasError(f"{where}: expected a non-empty list of layers or {{'layers': [...]}}, "
                          f"got {type(rows).__name__}")
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "name" not in r or "sigma" not in r:
            raise SigmasError(f"{where}: entry {i} must be an object with 'name' and 'sigma', "
                              f"got {r!r}")
        fan_in = r.get("fan_in", r.get("fan-in"))
        sigma = float("nan") if r["sigma"] is None else r["sigma"]
        channels = r.get("channel_sigmas")
        if channels is not None and version < 2:
            raise SigmasError(f"{where}: layer {r['name']!r} has channel_sigmas in a version-1 "
                              f"file; expected 'version': 2")
        if isinstance(channels, list):
            channels = tuple(float("nan") if v is None else v for v in channels)
        out.append(LayerSigma(r["name"], sigma, r.get("multiplications"), fan_in, channels))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SigmasError(f"{where}: duplicate layer names {dup}")
    return out


def read_sigmas(path: str | os.PathLike[str]) -> list[LayerSigma]:
    """Read ``sigmas.json`` (a file, or a run directory holding one)."""
    obj, p = read_json(path, SIGMAS_FILE, "sigmas", SigmasError)
    return parse_sigmas(obj, str(p))


def pair_with_stats(sigmas: Sequence[LayerSigma], stats: Sequence[OperandStats]
                    ) -> list[tuple[LayerSigma, OperandStats]]:
    """Pair each sigma with its layer's statistics, in the order of ``sigmas``.

    Raises:
        SigmasError: layer names differ (missing and unknown names are listed), or a layer's
            multiplications / fan-in disagree between the two files.
    """
    by_name = {s.name: s for s in stats}
    missing = [s.name for s in sigmas if s.name not in by_name]
    unknown = sorted(set(by_name) - {s.name for s in sigmas})
    if missing or unknown:
        raise SigmasError(f"sigmas vs operand statistics: {len(sigmas)} layers against "
                          f"{len(by_name)}; without statistics: {missing}; without sigma: "
                          f"{unknown}")
    pairs = [(s, by_name[s.name]) for s in sigmas]
    for sg, st in pairs:
        for key in ("multiplications", "fan_in"):
            a, b = getattr(sg, key), getattr(st, key)
            if a is not None and a != b:
                raise SigmasError(f"layer {sg.name!r}: sigmas.json says {key}={a}, operand "
                                  f"statistics say {b}")
    return pairs
