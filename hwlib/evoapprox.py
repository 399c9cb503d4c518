"""EvoApproxLib 8-bit circuits: the 13 signed v2022 circuits as BAM/TM models, published metrics.

``evo:mul8s_1KX5`` is the broken-array model BAM(5, 2) with the published PDK45 power, relative to
the signed exact circuit (0.425 mW). Other catalogued names have no closed form here: load them
from their C file (``file:path/to/mul8u_1JJQ.c``).
"""
from __future__ import annotations

import csv
import fnmatch
from functools import lru_cache
from importlib import resources

from hwlib.errors import SpecError
from hwlib.multiplier import Exact, Multiplier
from hwlib.power import Power

SIGNED_EXACT_MW, UNSIGNED_EXACT_MW = 0.425, 0.391
POWER_SOURCE = "EvoApproxLib v2022 PDK45 (published)"
CSV_FILES = {"v2022": "evoapproxlib_lite_v2022_mul8.csv",
             "master": "evoapproxlib_lite_master_mul8.csv"}

# v2022 name -> (model key, published PDK45 power in mW), multipliers.md
SIGNED_MODELS: dict[str, tuple[tuple[str, int, ...], float]] = {
    "mul8s_1KV6": (("bam", 0, 0), 0.425),
    "mul8s_1KV8": (("bam", 2, 0), 0.422),
    "mul8s_1KV9": (("bam", 3, 0), 0.410),
    "mul8s_1KVA": (("bam", 4, 0), 0.391),
    "mul8s_1KVM": (("bam", 1, 1), 0.369),
    "mul8s_1KVP": (("bam", 3, 1), 0.363),
    "mul8s_1KVQ": (("bam", 4, 1), 0.351),
    "mul8s_1KX5": (("bam", 5, 2), 0.289),
    "mul8s_1KXF": (("bam", 3, 3), 0.237),
    "mul8s_1L12": (("bam", 6, 6), 0.052),
    "mul8s_1L2J": (("tm", 1), 0.301),
    "mul8s_1L2L": (("tm", 2), 0.200),
    "mul8s_1L2N": (("tm", 3), 0.126),
}


def published_power(name: str, mw: float, signed: bool) -> Power:
    """PDK45 power of an EvoApprox circuit, relative to the exact circuit of its signedness."""
    exact = SIGNED_EXACT_MW if signed else UNSIGNED_EXACT_MW
    return Power(mw=mw, relative=mw / exact, source=f"{POWER_SOURCE}, {name}")


def published_power_of(model: tuple[str, int, ...]) -> Power | None:
    """Published power of the signed circuit a (family, params...) model key stands for, if any."""
    for name, (key, mw) in SIGNED_MODELS.items():
        if key == model:
            return published_power(name, mw, signed=True)
    return None


@lru_cache(maxsize=None)
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
    spec, power = f"evo:{name}", published_power(name, mw, signed=True)
    if key[0] == "bam" and key[1:] == (0, 0):
        from hwlib.domain import INT8

        return Exact(spec, INT8, INT8, power)
    if key[0] == "bam":
        return Bam(key[1], key[2], power=power, spec=spec)
    return OperandTruncation(key[1], power=power, spec=spec)


def expand(pattern: str) -> list[str]:
    """``evo:`` wildcard: the modelled signed names matching ``pattern`` (e.g. ``mul8s_*``)."""
    names = [n for n in SIGNED_MODELS if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise SpecError(f"catalog spec 'evo:{pattern}': matches no modelled circuit; modelled: "
                        f"{', '.join(SIGNED_MODELS)}")
    return [f"evo:{n}" for n in names]
