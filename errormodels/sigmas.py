"""Reading ``sigmas.json`` (the noise training's learned sigma per layer) and checking it."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from errormodels.errors import SigmasError, read_json
from errormodels.stats import OperandStats

SIGMAS_FILE = "sigmas.json"


@dataclass(frozen=True)
class LayerSigma:
    """One layer's learned noise level.

    Attributes:
        name: module name of the layer.
        sigma: learned sigma_l, relative to the std of the layer's output (its sign is ignored).
        multiplications: multiplications per input sample, when the file gives it.
        fan_in: products per output element, when the file gives it.
    """

    name: str
    sigma: float
    multiplications: int | None = None
    fan_in: int | None = None

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


def parse_sigmas(obj: Any, where: str = "sigmas") -> list[LayerSigma]:
    """Layers from decoded JSON: a list of entries or ``{"layers": [...]}``."""
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
        out.append(LayerSigma(r["name"], sigma, r.get("multiplications"), fan_in))
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
