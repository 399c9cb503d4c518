"""The search space: one integer gene per approximable layer, decoded to multiplier specs."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any

import numpy as np

import hwlib
from hwlib.assignment import Assignment, LayerAssignment, as_assignment
from hwlib.catalogs import Catalog


class Encoding(str, Enum):
    """How a gene value maps to a multiplier.

    ``SORTED``: gene g picks the g-th candidate ordered by decreasing power (0 = most power, the
    exact one), so neighbouring genes are similar multipliers. ``RAW``: the gene is the MARLIN
    level itself (MARLIN's own protocol; neighbours are not alike).
    """

    SORTED = "sorted"
    RAW = "raw"


class SearchSpaceError(ValueError):
    """A genome, assignment or catalog that does not fit the search space."""


@dataclass(frozen=True)
class SearchSpace:
    """Layers, their multiplication counts and the candidate multipliers each gene indexes.

    Attributes:
        layers: approximable layer names, in genome order.
        multiplications: multiplications per layer (same order).
        catalog: the candidate multipliers (an exact one always among them).
        encoding: how genes map to candidates.
    """

    layers: tuple[str, ...]
    multiplications: tuple[int, ...]
    catalog: Catalog
    encoding: Encoding

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.multiplications):
            raise SearchSpaceError(f"SearchSpace: {len(self.layers)} layers but "
                                   f"{len(self.multiplications)} multiplication counts")
        if not self.layers:
            raise SearchSpaceError("SearchSpace: expected at least one layer, got none")
        if len(set(self.layers)) != len(self.layers):
            raise SearchSpaceError(f"SearchSpace: duplicate layer names in {list(self.layers)}")
        if self.encoding is Encoding.RAW and not self.catalog.is_reconfigurable:
            raise SearchSpaceError(f"encoding 'raw' needs the catalog 'marlin:*' (gene = "
                                   f"level), got {self.catalog.spec!r}")

    @classmethod
    def build(cls, layers: Sequence[str], multiplications: Sequence[int],
              catalog: str | Catalog, encoding: Encoding | str = Encoding.SORTED) -> SearchSpace:
        """Space over ``catalog`` (a hwlib catalog spec such as ``marlin:*`` or ``evo:mul8s_*``,
        or a :class:`hwlib.Catalog`; its exact member makes the exact network and an error-model
        assignment that keeps a layer exact part of the space).

        Raises:
            SearchSpaceError: for an unknown catalog, or RAW encoding on a non-MARLIN catalog.
        """
        return cls(tuple(layers), tuple(int(c) for c in multiplications), _resolve(catalog),
                   Encoding(encoding))

    @classmethod
    def for_init(cls, layers: Sequence[str], multiplications: Sequence[int],
                 catalog: str | Catalog, init: str) -> SearchSpace:
        """The space of a search started with ``init``: a random-init search over the 256 MARLIN
        levels keeps MARLIN's raw-level genome (its protocol, the baseline), every other search
        the power-sorted one."""
        cat = _resolve(catalog)
        raw = init == "random" and cat.is_reconfigurable
        return cls.build(layers, multiplications, cat, Encoding.RAW if raw else Encoding.SORTED)

    @cached_property
    def _genes(self) -> tuple[hwlib.Multiplier, ...]:
        return self.catalog.levels if self.encoding is Encoding.RAW else self.catalog.by_power

    @cached_property
    def candidates(self) -> tuple[str, ...]:
        """Candidate specs in gene order (shared by all layers)."""
        return tuple(m.spec for m in self._genes)

    @cached_property
    def relative_power(self) -> tuple[float, ...]:
        """Relative power of each candidate (gene order)."""
        return tuple(float(m.relative_power) for m in self._genes)

    @property
    def power_source(self) -> str:
        """Label of the power table the energies use."""
        return self.catalog.power_source

    @cached_property
    def exact_gene(self) -> int:
        """The gene of the first exact candidate."""
        return next(i for i, m in enumerate(self._genes) if m.is_exact)

    @property
    def n_var(self) -> int:
        """Genome length."""
        return len(self.layers)

    def identity(self) -> dict[str, Any]:
        """What a search checkpoint records of its space (a resume must match it)."""
        return {"layers": list(self.layers), "candidates": list(self.candidates),
                "encoding": self.encoding.value}

    @property
    def gene_layout(self) -> str:
        """How the genome's genes map to layers (for error messages)."""
        return "one per layer"

    @property
    def upper(self) -> int:
        """Largest gene value."""
        return len(self.candidates) - 1

    def check(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """Genome as an int64 array after checking its length and gene range."""
        g = np.asarray(genome)
        if g.shape != (self.n_var,):
            raise SearchSpaceError(f"genome: expected {self.n_var} genes ({self.gene_layout}: "
                                   f"{', '.join(self.layers)}), got shape {g.shape}")
        if g.dtype.kind not in "iu" and not np.all(np.equal(np.mod(g, 1), 0)):
            raise SearchSpaceError(f"genome: expected integer genes, got {g.tolist()}")
        g = g.astype(np.int64)
        if g.min() < 0 or g.max() > self.upper:
            raise SearchSpaceError(f"genome: genes must lie in 0..{self.upper}, got {g.tolist()}")
        return g

    def decode(self, genome: Sequence[int] | np.ndarray) -> dict[str, str]:
        """Assignment layer name -> multiplier spec for a genome."""
        g = self.check(genome)
        return {name: self.candidates[int(v)] for name, v in zip(self.layers, g)}

    def assignment(self, genome: Sequence[int] | np.ndarray, rule: str,
                   details: Mapping[str, Any] | None = None) -> Assignment:
        """The genome as an Assignment: multiplications, catalog, energy and power source filled
        in, ``rule`` naming its producer."""
        specs = self.decode(genome)
        layers = tuple(LayerAssignment(name=n, multiplier=s, multiplications=c)
                       for (n, s), c in zip(specs.items(), self.multiplications))
        return Assignment(layers=layers, catalog=self.catalog.spec, rule=rule,
                          energy=self.energy(genome),
                          power_source=self.catalog.power_source_of(specs.values()),
                          details=dict(details or {}))

    def encode(self, assignment: Assignment | Mapping[str, str]) -> np.ndarray:
        """Genome of an assignment (every layer named once, every spec in the catalog).

        Raises:
            AssignmentError: missing or unknown layer names.
            SearchSpaceError: a multiplier outside the catalog.
        """
        asg = as_assignment(assignment)
        asg.check_names(self.layers, "assignment for the search layers")
        specs = asg.specs()
        index = {s: i for i, s in enumerate(self.candidates)}
        bad = {n: specs[n] for n in self.layers if specs[n] not in index}
        if bad:
            raise SearchSpaceError(f"assignment uses multipliers outside the catalog: {bad}")
        return np.array([index[specs[n]] for n in self.layers], dtype=np.int64)

    def energy(self, genome: Sequence[int] | np.ndarray) -> float:
        """Relative multiplication energy sum_l c_l P(m_l) / sum_l c_l P(exact)."""
        g = self.check(genome)
        return self.catalog.energy([self.candidates[int(v)] for v in g], self.multiplications)

    def uniform(self, gene: int) -> np.ndarray:
        """Genome with every layer on the same candidate."""
        return self.check(np.full(self.n_var, gene))


def _resolve(catalog: str | Catalog) -> Catalog:
    try:
        return Catalog.build(catalog)
    except ValueError as exc:
        raise SearchSpaceError(f"search catalog {catalog!r}: {exc}") from exc
