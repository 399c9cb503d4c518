"""EvoApproxLib 8-bit circuits: the 13 signed v2022 circuits as BAM/TM models, published metrics.

``evo:mul8s_1KX5`` is the broken-array model BAM(5, 2) with the published PDK45 power, relative to
the signed exact circuit (0.425 mW). Other catalogued names have no closed form here: load them
from their C file (``file:path/to/mul8u_1JJQ.c``).
"""
from __future__ import annotations

import csv
import fnmatch
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from hwlib.domain import INT8
from hwlib.errors import SpecError
from hwlib.multiplier import Exact, Multiplier
from hwlib.power import Power

SIGNED_EXACT_MW, UNSIGNED_EXACT_MW = 0.425, 0.391
POWER_SOURCE = "EvoApproxLib v2022 PDK45 (published)"
CSV_FILES = {"v2022": "evoapproxlib_lite_v2022_mul8.csv",
             "master": "evoapproxlib_lite_master_mul8.csv"}


@dataclass(frozen=True)
class ClosedForm:
    """The closed-form model of a signed circuit: ``bam`` (a = v, b = h) or ``tm`` (a = k)."""

    family: str
    a: int
    b: int = 0


# v2022 name -> (closed form, published PDK45 power in mW), docs/multipliers.md
SIGNED_MODELS: dict[str, tuple[ClosedForm, float]] = {
    "mul8s_1KV6": (ClosedForm("bam", 0, 0), 0.425),
    "mul8s_1KV8": (ClosedForm("bam", 2, 0), 0.422),
    "mul8s_1KV9": (ClosedForm("bam", 3, 0), 0.410),
    "mul8s_1KVA": (ClosedForm("bam", 4, 0), 0.391),
    "mul8s_1KVM": (ClosedForm("bam", 1, 1), 0.369),
    "mul8s_1KVP": (ClosedForm("bam", 3, 1), 0.363),
    "mul8s_1KVQ": (ClosedForm("bam", 4, 1), 0.351),
    "mul8s_1KX5": (ClosedForm("bam", 5, 2), 0.289),
    "mul8s_1KXF": (ClosedForm("bam", 3, 3), 0.237),
    "mul8s_1L12": (ClosedForm("bam", 6, 6), 0.052),
    "mul8s_1L2J": (ClosedForm("tm", 1), 0.301),
    "mul8s_1L2L": (ClosedForm("tm", 2), 0.200),
    "mul8s_1L2N": (ClosedForm("tm", 3), 0.126),
}


def published_power(mw: float, signed: bool) -> Power:
    """PDK45 power of an EvoApprox circuit, relative to the exact circuit of its signedness."""
    exact = SIGNED_EXACT_MW if signed else UNSIGNED_EXACT_MW
    return Power(mw=mw, relative=mw / exact, source=POWER_SOURCE)


def published_power_of(model: ClosedForm) -> Power | None:
    """Published power of the signed circuit ``model`` stands for, if it is one of the 13."""
    for key, mw in SIGNED_MODELS.values():
        if key == model:
            return published_power(mw, signed=True)
    return None


@cache
def published_metrics(generation: str = "v2022") -> dict[str, dict[str, str]]:
    """Rows of the shipped EvoApproxLib-lite CSV of ``generation`` ('v2022'/'master'), by name."""
    if generation not in CSV_FILES:
        raise SpecError(f"EvoApprox generation: expected one of {sorted(CSV_FILES)}, got "
                        f"{generation!r}")
    text = resources.files("hwlib").joinpath(f"data/{CSV_FILES[generation]}").read_text()
    return {row["name"]: row for row in csv.DictReader(text.splitlines())}


def model(name: str) -> Multiplier:
    """The closed-form model of a signed v2022 circuit, with its published power."""
    from hwlib.bam import Bam
    from hwlib.tm import OperandTruncation

    if name not in SIGNED_MODELS:
        catalogued = name in published_metrics("v2022") or name in published_metrics("master")
        hint = (f"{name} is catalogued but has no closed-form model in hwlib; load the circuit "
                f"from its C file with 'file:path/to/{name}.c'" if catalogued else
                f"unknown EvoApprox name {name!r}; load a circuit with 'file:path/to/{name}.c'")
        raise SpecError(f"multiplier spec 'evo:{name}': {hint}. Closed-form models: "
                        f"{', '.join(SIGNED_MODELS)}")
    key, mw = SIGNED_MODELS[name]
    spec, power = f"evo:{name}", published_power(mw, signed=True)
    if key == ClosedForm("bam", 0, 0):
        return Exact(spec, INT8, INT8, power)
    if key.family == "bam":
        return Bam(key.a, key.b, power=power, spec=spec)
    return OperandTruncation(key.a, power=power, spec=spec)


def identify(table: np.ndarray) -> str | None:
    """The v2022 name of the modelled signed circuit whose int8 x int8 table equals ``table``."""
    from hwlib.registry import get

    t = np.asarray(table)
    if t.shape != (256, 256):
        return None
    return next((n for n in SIGNED_MODELS if np.array_equal(get(f"evo:{n}").table(), t)), None)


def expand(pattern: str) -> list[str]:
    """``evo:`` wildcard: the modelled signed names matching ``pattern`` (e.g. ``mul8s_*``)."""
    names = [n for n in SIGNED_MODELS if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise SpecError(f"catalog spec 'evo:{pattern}': matches no modelled circuit; modelled: "
                        f"{', '.join(SIGNED_MODELS)}")
    return [f"evo:{n}" for n in names]
