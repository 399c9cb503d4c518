"""Registration of the built-in multiplier families with the spec registry."""
from __future__ import annotations

from hwlib import marlin
from hwlib.errors import SpecError
from hwlib.registry import register


def _marlin(arg: str) -> marlin.Marlin:
    try:
        level = int(arg)
    except ValueError:
        raise SpecError(f"multiplier spec 'marlin:{arg}': expected a level 0..255 after "
                        f"'marlin:', got {arg!r}") from None
    if not 0 <= level <= 255:
        raise SpecError(f"multiplier spec 'marlin:{arg}': level {level} outside 0..255")
    return marlin.Marlin(level)


def _marlin_all(pattern: str) -> list[str]:
    if pattern != "*":
        raise SpecError(f"catalog spec 'marlin:{pattern}': the only MARLIN wildcard is 'marlin:*'")
    return [f"marlin:{lv}" for lv in range(marlin.N_LEVELS)]


register("marlin", _marlin, _marlin_all)
