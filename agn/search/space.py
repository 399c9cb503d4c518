"""The search space: one integer gene per approximable layer, decoded to multiplier specs."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

import hwlib


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
        candidates: candidate specs in gene order (shared by all layers).
        relative_power: relative power of each candidate (same order).
        encoding: how genes map to candidates.
        power_source: label of the power table the energies use.
    """

    layers: tuple[str, ...]
    multiplications: tuple[int, ...]
    candidates: tuple[str, ...]
    relative_power: tuple[float, ...]
    encoding: Encoding
    power_source: str

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.multiplications):
            raise SearchSpaceError(f"SearchSpace: {len(self.layers)} layers but "
                                   f"{len(self.multiplications)} multiplication counts")
        if not self.layers:
            raise SearchSpaceError("SearchSpace: expected at least one layer, got none")
        if len(set(self.layers)) != len(self.layers):
            raise SearchSpaceError(f"SearchSpace: duplicate layer names in {list(self.layers)}")

    @classmethod
    def build(cls, layers: Sequence[str], multiplications: Sequence[int], catalog: str,
              encoding: Encoding | str = Encoding.SORTED) -> SearchSpace:
        """Space over ``catalog`` (a hwlib catalog spec such as ``marlin:*`` or ``evo:mul8s_*``),
        plus the exact multiplier when no member is exact (so the exact network and an error-model
        assignment that keeps a layer exact are always in the space).

        Raises:
            SearchSpaceError: for an unknown catalog, or RAW encoding on a non-MARLIN catalog.
        """
        return cls._from(layers, multiplications, catalog, _resolve(catalog), Encoding(encoding))

    @classmethod
    def for_init(cls, layers: Sequence[str], multiplications: Sequence[int], catalog: str,
                 init: str) -> SearchSpace:
        """The space of a search started with ``init``: a random-init search over the 256 MARLIN
        levels keeps MARLIN's raw-level genome (its protocol, the baseline), every other search
        the power-sorted one."""
        mults = _resolve(catalog)
        raw = init == "random" and _is_marlin_levels(mults)
        return cls._from(layers, multiplications, catalog, mults,
                         Encoding.RAW if raw else Encoding.SORTED)

    @classmethod
    def _from(cls, layers: Sequence[str], multiplications: Sequence[int], catalog: str,
              mults: list[hwlib.Multiplier], encoding: Encoding) -> SearchSpace:
        if encoding is Encoding.RAW:
            if not _is_marlin_levels(mults):
                raise SearchSpaceError(f"encoding 'raw' needs the catalog 'marlin:*' (gene = "
                                       f"level), got {catalog!r}")
        else:
            if not any(m.is_exact for m in mults):  # as the error model's catalog does
                mults = [*mults, hwlib.get("exact")]
            mults = sorted(mults, key=lambda m: (-m.relative_power, m.spec))
        sources = sorted({m.power.label for m in mults})
        return cls(tuple(layers), tuple(int(c) for c in multiplications),
                   tuple(m.spec for m in mults), tuple(float(m.relative_power) for m in mults),
                   encoding, "; ".join(sources))

    @property
    def n_var(self) -> int:
        """Genome length."""
        return len(self.layers)

    @property
    def upper(self) -> int:
        """Largest gene value."""
        return len(self.candidates) - 1

    def check(self, genome: Sequence[int] | np.ndarray) -> np.ndarray:
        """Genome as an int64 array after checking its length and gene range."""
        g = np.asarray(genome)
        if g.shape != (self.n_var,):
            raise SearchSpaceError(f"genome: expected {self.n_var} genes (one per layer: "
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

    def encode(self, assignment: Mapping[str, str]) -> np.ndarray:
        """Genome of an assignment (every layer named once, every spec in the catalog)."""
        missing = [n for n in self.layers if n not in assignment]
        unknown = [n for n in assignment if n not in self.layers]
        if missing or unknown:
            raise SearchSpaceError(f"assignment does not match the search layers: missing "
                                   f"{missing}, unknown {unknown}")
        index = {s: i for i, s in enumerate(self.candidates)}
        bad = {n: assignment[n] for n in self.layers if assignment[n] not in index}
        if bad:
            raise SearchSpaceError(f"assignment uses multipliers outside the catalog: {bad}")
        return np.array([index[assignment[n]] for n in self.layers], dtype=np.int64)

    def energy(self, genome: Sequence[int] | np.ndarray) -> float:
        """Relative multiplication energy sum_l c_l P(m_l) / sum_l c_l P(exact)."""
        g = self.check(genome)
        c = np.asarray(self.multiplications, dtype=np.float64)
        p = np.asarray(self.relative_power)[g]
        return float((c * p).sum() / c.sum())

    def uniform(self, gene: int) -> np.ndarray:
        """Genome with every layer on the same candidate."""
        return self.check(np.full(self.n_var, gene))


def _resolve(catalog: str) -> list[hwlib.Multiplier]:
    try:
        return hwlib.catalog(catalog)
    except ValueError as exc:
        raise SearchSpaceError(f"search catalog {catalog!r}: {exc}") from exc


def _is_marlin_levels(mults: Sequence[hwlib.Multiplier]) -> bool:
    """True for exactly MARLIN's 256 levels in level order (the raw genome's catalog)."""
    return [m.spec for m in mults] == [f"marlin:{lv}" for lv in range(256)]
