"""Operand domains: the integer ranges a multiplier accepts on each input."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwlib.errors import DomainError


@dataclass(frozen=True)
class Domain:
    """A closed integer interval [lo, hi] of operand values.

    Tables are indexed by ``value - lo``, so row/column ``i`` of a table holds operand ``lo + i``.
    """

    name: str
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.hi < self.lo:
            raise DomainError(f"Domain {self.name!r}: hi={self.hi} is below lo={self.lo}")

    @property
    def size(self) -> int:
        """Number of values in the domain."""
        return self.hi - self.lo + 1

    @property
    def signed(self) -> bool:
        """True when the domain holds negative values."""
        return self.lo < 0

    def values(self) -> np.ndarray:
        """All values of the domain, ascending, as int64."""
        return np.arange(self.lo, self.hi + 1, dtype=np.int64)

    def index(self, v: np.ndarray) -> np.ndarray:
        """Table index of each value (``v - lo``)."""
        return np.asarray(v, dtype=np.int64) - self.lo

    def check(self, v: np.ndarray, operand: str, owner: str) -> np.ndarray:
        """Return ``v`` as int64 after checking it is integer and inside the domain."""
        a = np.asarray(v)
        if a.dtype.kind not in "iub":
            raise DomainError(
                f"operand {operand} of {owner}: expected an integer array, got dtype {a.dtype}"
            )
        a = a.astype(np.int64, copy=False)
        if a.size:
            lo, hi = int(a.min()), int(a.max())
            if lo < self.lo or hi > self.hi:
                bad = lo if lo < self.lo else hi
                raise DomainError(
                    f"operand {operand} of {owner}: value {bad} outside its domain "
                    f"{self.name} [{self.lo}, {self.hi}]"
                )
        return a

    def intersect(self, lo: int, hi: int) -> Domain:
        """The part of this domain inside [lo, hi] (e.g. the activations a network can feed)."""
        return Domain(f"{self.name}&[{lo},{hi}]", max(self.lo, lo), min(self.hi, hi))


UINT8 = Domain("uint8", 0, 255)
INT8 = Domain("int8", -128, 127)
UINT7 = Domain("uint7", 0, 127)
INT9 = Domain("int9", -256, 255)
