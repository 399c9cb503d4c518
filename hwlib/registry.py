"""Spec strings -> multipliers: ``exact``, ``marlin:17``, ``marlin:*``, ``evo:mul8s_1L2N``, ...

Each family registers a factory taking the text after ``family:``. ``get`` returns one
multiplier; ``catalog`` expands wildcards and comma lists into several.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from hwlib.errors import SpecError
from hwlib.multiplier import Exact, Multiplier

RAW_SUFFIX = ":raw"  # the uint8 x uint8 circuit behind a sign-magnitude network form

Factory = Callable[[str], Multiplier]
Expander = Callable[[str], list[str]]

_FACTORIES: dict[str, Factory] = {}
_EXPANDERS: dict[str, Expander] = {}
_CACHE: dict[str, Multiplier] = {}


def register(family: str, factory: Factory, expander: Expander | None = None) -> None:
    """Register ``family`` so that ``get(f"{family}:{arg}")`` calls ``factory(arg)``.

    ``expander(pattern)`` turns a wildcard argument (containing ``*``) into full spec strings.
    """
    _FACTORIES[family] = factory
    if expander is not None:
        _EXPANDERS[family] = expander


def families() -> list[str]:
    """Registered family names, sorted (``exact`` included)."""
    return sorted({"exact", *_FACTORIES})


def get(spec: str | Multiplier) -> Multiplier:
    """The multiplier a spec string names (a Multiplier passes through unchanged)."""
    if isinstance(spec, Multiplier):
        return spec
    if not isinstance(spec, str):
        raise SpecError(f"multiplier spec: expected a string such as 'marlin:17', got {spec!r}")
    key = spec.strip()
    if key in _CACHE:
        return _CACHE[key]
    if key == "exact":
        m: Multiplier = Exact()
    elif key.endswith(RAW_SUFFIX):
        m = _raw(key)
    else:
        family, sep, arg = key.partition(":")
        if not sep or not arg:
            raise SpecError(f"multiplier spec {spec!r}: expected 'family:argument' or 'exact'; "
                            f"known families: {', '.join(families())}")
        if "*" in arg:
            raise SpecError(f"multiplier spec {spec!r} is a wildcard; use hwlib.catalog() for it")
        if family not in _FACTORIES:
            raise SpecError(f"multiplier spec {spec!r}: unknown family {family!r}; "
                            f"known families: {', '.join(families())}")
        m = _FACTORIES[family](arg)
    m = _CACHE.setdefault(m.spec, m)  # 'bam:v05h2' and 'bam:v5h2' share one instance
    _CACHE[key] = m
    return m


def _raw(key: str) -> Multiplier:
    """The unsigned circuit behind a network form: ``trunc:k4:raw`` is get('trunc:k4').circuit."""
    base = get(key[: -len(RAW_SUFFIX)])
    circuit = getattr(base, "circuit", None)
    if circuit is None:
        raise SpecError(f"multiplier spec {key!r}: {base.spec!r} is not a sign-magnitude network "
                        f"form, so it has no ':raw' circuit (it is its own circuit)")
    return circuit


def expand(spec: str) -> list[str]:
    """Full spec strings a (possibly wildcard or comma-separated) spec stands for."""
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            raise SpecError(f"catalog spec {spec!r}: empty entry between commas")
        family, _, arg = part.partition(":")
        if "*" in arg:
            if family not in _EXPANDERS:
                raise SpecError(f"catalog spec {part!r}: family {family!r} has no wildcard; "
                                f"wildcard families: {', '.join(sorted(_EXPANDERS)) or 'none'}")
            out.extend(_EXPANDERS[family](arg))
        else:
            out.append(part)
    return out


def catalog(spec: str | Iterable[str]) -> list[Multiplier]:
    """Multipliers for a catalog spec (``marlin:*``, ``evo:mul8s_*``, ``exact,bam:v5h2``, ...)."""
    specs = expand(spec) if isinstance(spec, str) else [s for p in spec for s in expand(p)]
    return [get(s) for s in specs]


def parse_arg(family: str, arg: str, pattern: str, example: str) -> tuple[str, ...]:
    """Groups of ``pattern`` fully matching ``arg``, else a SpecError showing ``example``."""
    m = re.fullmatch(pattern, arg)
    if m is None:
        raise SpecError(f"multiplier spec '{family}:{arg}': expected an argument like "
                        f"'{family}:{example}', got {arg!r}")
    return m.groups()


def check_range(spec: str, name: str, value: int, lo: int, hi: int) -> int:
    """``value`` after checking ``lo <= value <= hi`` (SpecError naming the parameter)."""
    if not lo <= value <= hi:
        raise SpecError(f"multiplier spec {spec!r}: parameter {name}={value} outside {lo}..{hi}")
    return value
