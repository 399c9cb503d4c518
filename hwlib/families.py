"""Registration of the built-in multiplier families with the spec registry.

Spec forms (``hwlib.get``):

- ``marlin:0`` .. ``marlin:255``: MARLIN levels, x uint8 (9-bit hardware operand), w int8.
- Signed int8 x int8 circuits (networks feed activations 0..127, ``network_x_domain()``):
  ``bam:v5h2``, ``tm:k3``, ``roup:r4p1``, ``evo:mul8s_1KX5`` (the 13 signed EvoApprox names).
- Unsigned circuits in network form (x uint8, w int8 served in sign magnitude, see
  :mod:`hwlib.signmag`): ``trunc:k4``, ``trunc:k4c``, ``perf:m2s0``, ``drum:k6``, ``mitchell:8``,
  ``roba:8``, and the unsigned variants ``bam:v5h2u``, ``tm:k3u``, ``roup:r4p1u``. Append
  ``:raw`` for the uint8 x uint8 circuit itself (``.circuit``), e.g. ``trunc:k4:raw``.
- ``file:path`` (``.c``, ``.bin``, ``.npy``): a user's circuit, see :mod:`hwlib.tablefile`.
- ``table:sha256:<hex>``: an anonymous Multiplier object (e.g. a ``TableMultiplier`` built from
  an array) addressed by its content, see :mod:`hwlib.anonymous`.

Wildcards (``hwlib.catalog``) match each family's grid with shell patterns: ``marlin:*``,
``evo:mul8s_*``, ``bam:*``, ``bam:v*h0``, ``tm:*``, ``trunc:*``, ``perf:*``, ``drum:*``, ``roup:*``.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable

from hwlib import (
    anonymous,
    bam,
    drum,
    evoapprox,
    logmul,
    marlin,
    perforation,
    roup,
    tablefile,
    tm,
    truncation,
)
from hwlib.errors import SpecError
from hwlib.registry import Expander, register


def _marlin(arg: str) -> marlin.Marlin:
    try:
        level = int(arg)
    except ValueError:
        raise SpecError(f"multiplier spec 'marlin:{arg}': expected a level 0..255 after "
                        f"'marlin:', got {arg!r}") from None
    if not 0 <= level <= 255:
        raise SpecError(f"multiplier spec 'marlin:{arg}': level {level} is outside MARLIN's "
                        f"levels 0..255")
    if str(level) != arg:
        raise SpecError(f"multiplier spec 'marlin:{arg}': write the level as a plain decimal "
                        f"number ('marlin:{level}'), got {arg!r}")
    return marlin.Marlin(level)


def _grid_expander(family: str, grid: Callable[[], list[str]]) -> Expander:
    def expand(pattern: str) -> list[str]:
        args = [a for a in grid() if fnmatch.fnmatchcase(a, pattern)]
        if not args:
            raise SpecError(f"catalog spec '{family}:{pattern}': matches nothing in the {family} "
                            f"grid ({', '.join(grid())})")
        return [f"{family}:{a}" for a in args]
    return expand


register("marlin", _marlin, _grid_expander("marlin", lambda: [str(v) for v in range(256)]))
register("evo", evoapprox.model, evoapprox.expand)
register("file", tablefile.load)
register(anonymous.FAMILY, anonymous.lookup)
register("mitchell", logmul.make_mitchell)
register("roba", logmul.make_roba)
for _module, _family in ((bam, "bam"), (tm, "tm"), (truncation, "trunc"), (perforation, "perf"),
                         (drum, "drum"), (roup, "roup")):
    register(_family, _module.make, _grid_expander(_family, _module.grid))
