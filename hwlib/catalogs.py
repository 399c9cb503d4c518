"""A catalog of multipliers: its members (an exact one always present), their order by power,
whether it is MARLIN's reconfigurable family, the activation codes every member accepts, its
power sources and the relative multiplication energy of an assignment over it.

Every package expands a catalog through :meth:`Catalog.build` and nowhere else.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hwlib.blocks import Block, layer_specs
from hwlib.errors import AssignmentError, SpecError
from hwlib.marlin import N_LEVELS, Marlin
from hwlib.multiplier import Multiplier
from hwlib.registry import catalog as expand_catalog
from hwlib.registry import get

SpecLike = str | Multiplier


@dataclass(frozen=True)
class Catalog:
    """The candidate multipliers of a search or a matching, addressed by spec strings.

    Attributes:
        spec: the catalog spec it was built from (``"marlin:*"``; a list of specs is joined with
            commas).
        members: the multipliers in expansion order, each spec once, with ``hwlib.get("exact")``
            appended when no member is exact (so the exact network is always in the catalog).
    """

    spec: str
    members: tuple[Multiplier, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise SpecError(f"catalog {self.spec!r}: expected at least one multiplier, got none")
        specs = [m.spec for m in self.members]
        if len(set(specs)) != len(specs):
            twice = sorted({s for s in specs if specs.count(s) > 1})
            raise SpecError(f"catalog {self.spec!r}: members {twice} appear more than once")
        if not any(m.is_exact for m in self.members):
            raise SpecError(f"catalog {self.spec!r}: expected an exact member, got none "
                            f"(Catalog.build adds one)")

    @classmethod
    def build(cls, spec: str | Catalog | Iterable[SpecLike]) -> Catalog:
        """The catalog of a spec string (``"marlin:*"``, ``"evo:mul8s_*"``, ``"exact,bam:v5h2"``)
        or of a list of specs (wildcards allowed) and Multiplier objects; a Catalog passes through.

        A spec named twice is kept once (at its first place); the exact multiplier is appended
        when no member is exact.

        Raises:
            SpecError: an unknown family or spec, or a spec naming no multiplier.
        """
        if isinstance(spec, Catalog):
            return spec
        if isinstance(spec, str):
            label, mults = spec, expand_catalog(spec)
        else:
            mults = [m for s in spec for m in
                     ([s] if isinstance(s, Multiplier) else expand_catalog(_spec_string(s)))]
            label = ",".join(m.spec for m in mults)
        unique = list({m.spec: m for m in reversed(mults)}.values())[::-1]  # first occurrence
        if not unique:
            raise SpecError(f"catalog {spec!r}: names no multiplier")
        if not any(m.is_exact for m in unique):
            unique.append(get("exact"))
        return cls(spec=label, members=tuple(unique))

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Multiplier]:
        return iter(self.members)

    def __contains__(self, spec: object) -> bool:
        return self._find(spec) is not None

    @cached_property
    def specs(self) -> tuple[str, ...]:
        """Spec string of each member, in member order."""
        return tuple(m.spec for m in self.members)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.specs)}

    def _find(self, spec: object) -> int | None:
        if not isinstance(spec, (str, Multiplier)):
            return None
        key = spec.spec if isinstance(spec, Multiplier) else spec.strip()
        if key in self._index:
            return self._index[key]
        try:  # another spelling of a member ('bam:v05h2' for 'bam:v5h2')
            return self._index.get(get(key).spec)
        except (ValueError, OSError):
            return None

    def index(self, spec: object) -> int:
        """Position of a member in :attr:`members`.

        Raises:
            AssignmentError: ``spec`` is not a member.
        """
        i = self._find(spec)
        if i is None:
            shown = ", ".join(self.specs[:4]) + (", ..." if len(self) > 4 else "")
            raise AssignmentError(f"multiplier {getattr(spec, 'spec', spec)!r} is not in catalog "
                                  f"{self.spec!r} ({len(self)} members: {shown})")
        return i

    def member(self, spec: SpecLike) -> Multiplier:
        """The member a spec names (AssignmentError when it is not one)."""
        return self.members[self.index(spec)]

    @cached_property
    def exact_index(self) -> int:
        """Index of the first exact member."""
        return next(i for i, m in enumerate(self.members) if m.is_exact)

    @property
    def exact(self) -> Multiplier:
        """The first exact member."""
        return self.members[self.exact_index]

    @cached_property
    def by_power(self) -> tuple[Multiplier, ...]:
        """Members by decreasing relative power, ties by spec (the search's gene order)."""
        return tuple(sorted(self.members, key=lambda m: (-m.relative_power, m.spec)))

    @cached_property
    def relative_power(self) -> tuple[float, ...]:
        """Relative power of each member (member order)."""
        return tuple(float(m.relative_power) for m in self.members)

    @cached_property
    def is_reconfigurable(self) -> bool:
        """True for exactly MARLIN's 256 levels: one circuit, any level per layer by a CSR write."""
        levels = sorted(m.level for m in self.members if isinstance(m, Marlin))
        return len(self.members) == N_LEVELS and levels == list(range(N_LEVELS))

    @property
    def levels(self) -> tuple[Multiplier, ...]:
        """The members in level order (gene = level) of a reconfigurable catalog.

        Raises:
            SpecError: the catalog is not MARLIN's 256 levels.
        """
        if not self.is_reconfigurable:
            raise SpecError(f"catalog {self.spec!r} is not reconfigurable: expected exactly "
                            f"MARLIN's {N_LEVELS} levels ('marlin:*')")
        return tuple(sorted(self.members, key=lambda m: m.level if isinstance(m, Marlin) else -1))

    @cached_property
    def activation_range(self) -> tuple[int, int]:
        """The uint8 activation codes every member accepts (0..127 with signed circuits)."""
        return activation_range(self.members)

    @cached_property
    def power_sources(self) -> tuple[str, ...]:
        """Power label of each member (member order)."""
        return tuple(m.power.label for m in self.members)

    @cached_property
    def power_source(self) -> str:
        """The power label of the whole catalog (see :func:`power_label`)."""
        return power_label(self.members)

    def power_source_of(self, specs: Iterable[SpecLike | tuple[Block, ...]]) -> str:
        """The power label of the members ``specs`` name (e.g. an assignment's multipliers)."""
        return power_label(self.member(m) for s in specs
                           for m in (layer_specs(s) if isinstance(s, tuple) else (s,)))

    def energy(self, assignment_or_specs: object,
               multiplications: Sequence[int] | None = None) -> float:
        """Relative multiplication energy ``sum_l c_l P(m_l) / sum_l c_l P(exact)``.

        P is each member's power relative to its family's exact multiplier.

        Args:
            assignment_or_specs: an :class:`~hwlib.assignment.Assignment`, a mapping layer name ->
                spec, or a sequence of specs / multipliers (one per layer); every multiplier a
                member.
            multiplications: c_l per layer; optional for an Assignment whose layers carry them.

        Returns:
            The relative energy, 1.0 for an all-exact network.

        Raises:
            AssignmentError: a multiplier outside the catalog, or bad multiplication counts.
        """
        specs, counts = _specs_and_counts(assignment_or_specs, multiplications)
        c = np.asarray(counts, np.float64)
        power = np.array([self._power_of(s) for s in specs], np.float64)
        return float((c * power).sum() / c.sum())

    def _power_of(self, spec: Any) -> float:
        """Relative power of a layer's spec; for blocks, their mean weighted by block area
        (the share of the layer's multiplications each block holds)."""
        if not isinstance(spec, tuple) or not all(isinstance(b, Block) for b in spec):
            return self.relative_power[self.index(spec)]
        area = np.array([(b.out[1] - b.out[0]) * (b.inp[1] - b.inp[0] if b.inp else 1)
                         for b in spec], np.float64)
        power = np.array([self.relative_power[self.index(b.multiplier)] for b in spec])
        return float((area * power).sum() / area.sum())


def activation_range(mults: Iterable[Multiplier]) -> tuple[int, int]:
    """The uint8 activation codes ``(lo, hi)`` every multiplier of ``mults`` accepts."""
    lo, hi = 0, 255
    for m in mults:
        dom = m.network_x_domain()
        lo, hi = max(lo, dom.lo), min(hi, dom.hi)
    return lo, hi


def power_label(mults: Iterable[Multiplier]) -> str:
    """Label of the power table(s) behind ``mults``: the one label they share, else
    ``"mixed: a; b"`` with the distinct labels sorted."""
    labels = sorted({m.power.label for m in mults})
    if not labels:
        raise SpecError("power_label: expected at least one multiplier, got none")
    return labels[0] if len(labels) == 1 else "mixed: " + "; ".join(labels)


def _spec_string(s: object) -> str:
    if not isinstance(s, str):
        raise SpecError(f"catalog: expected spec strings or hwlib Multipliers, got {s!r}")
    return s


def _specs_and_counts(obj: object, multiplications: Sequence[int] | None
                      ) -> tuple[list[SpecLike], list[int]]:
    layers = getattr(obj, "layers", None)
    counts: list[int] | list[int | None]
    if layers is not None and not isinstance(obj, Mapping):
        specs: list[SpecLike] = [layer.spec for layer in layers]
        counts = ([layer.multiplications for layer in layers] if multiplications is None
                  else list(multiplications))
        if any(c is None for c in counts):
            raise AssignmentError("energy: the assignment's layers carry no multiplication "
                                  "counts; pass multiplications")
    elif isinstance(obj, Mapping):
        specs = list(obj.values())
        counts = list(multiplications) if multiplications is not None else []
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        specs = list(obj)
        counts = list(multiplications) if multiplications is not None else []
    else:
        raise AssignmentError(f"energy: expected an Assignment, a sequence of specs or a mapping "
                              f"name -> spec, got {type(obj).__name__}")
    if not specs:
        raise AssignmentError("energy: expected at least one layer, got none")
    if len(counts) != len(specs):
        raise AssignmentError(f"energy: {len(specs)} layers but {len(counts)} multiplication "
                              f"counts")
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, (int, np.integer))
           or c < 0]
    if bad or sum(int(c) for c in counts if c is not None) <= 0:
        raise AssignmentError(f"energy: multiplications must be non-negative integers with a "
                              f"positive sum, got {list(counts)}")
    return specs, [int(c) for c in counts if c is not None]
