"""Activations of network prefixes kept between scored candidates, bounded in bytes (LRU).

A node's output depends only on the data and on the multipliers of the layers upstream of it.
Keyed by (data chunk, node, those multipliers), it is reused by every later candidate whose
upstream layers carry the same multipliers: NSGA-II offspring share their first layers with a
parent, so only the layers from the first changed one on run again. Reuse is by identical key,
so results are bit-identical with and without the cache.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, fields

import torch

from agn.config.schema import SEARCH_CACHE_BYTES

__all__ = ["DEFAULT_BYTES", "ActivationCache", "CacheStats"]

DEFAULT_BYTES = SEARCH_CACHE_BYTES
"""Default budget of an :class:`ActivationCache` (1 GiB: a generation of 70 candidates of the
MARLIN MNIST network on 2,000 validation images holds about that; ``search.cache_bytes``)."""


@dataclass(frozen=True, kw_only=True)
class CacheStats:
    """Reuse over the candidates scored since the counters were last reset.

    Attributes:
        candidates: candidates scored.
        layers_run: approximable-layer evaluations the candidates asked for (layers x chunks).
        layers_reused: of those, the ones served from cached activations instead of computed.
        bytes_held, capacity: bytes of activations held now, and the budget.
    """

    candidates: int
    layers_run: int
    layers_reused: int
    bytes_held: int
    capacity: int

    @property
    def hit_rate(self) -> float:
        """Fraction of layer evaluations reused (0 when none ran)."""
        return self.layers_reused / self.layers_run if self.layers_run else 0.0

    def as_dict(self) -> dict:
        """The figures as plain JSON values, hit rate included."""
        return {"candidates": self.candidates, "layers_run": self.layers_run,
                "layers_reused": self.layers_reused, "hit_rate": self.hit_rate,
                "bytes_held": self.bytes_held, "capacity_bytes": self.capacity}

    @classmethod
    def total(cls, parts: Sequence[CacheStats]) -> CacheStats:
        """The figures of several caches (e.g. one per Dask worker) added up."""
        return cls(**{f.name: sum(getattr(p, f.name) for p in parts) for f in fields(cls)})


class ActivationCache:
    """Least-recently-used map of keys to tensors holding at most ``capacity`` bytes.

    ``capacity`` 0 disables it (nothing is kept). A tensor larger than the whole budget is not
    kept. Not thread-safe: each scorer (each Dask worker's copy) owns one; a pickled cache
    arrives empty.
    """

    def __init__(self, capacity: int = DEFAULT_BYTES) -> None:
        if capacity < 0:
            raise ValueError(f"ActivationCache: capacity expected bytes >= 0, got {capacity}")
        self.capacity = int(capacity)
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.reset_stats()

    def __reduce__(self) -> tuple:
        return (ActivationCache, (self.capacity,))  # ship the budget, not the tensors

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors held (a running total)."""
        return self._bytes

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The tensor under ``key`` (now the most recently used), or None."""
        t = self._items.get(key)
        if t is not None:
            self._items.move_to_end(key)
        return t

    def put(self, key: Hashable, t: torch.Tensor) -> None:
        """Keep ``t`` under ``key``, evicting the least recently used beyond the budget."""
        size = t.numel() * t.element_size()
        if size > self.capacity:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._items[key] = t
        self._bytes += size
        while self._bytes > self.capacity:
            _, gone = self._items.popitem(last=False)
            self._bytes -= gone.numel() * gone.element_size()

    def record(self, layers_run: int, layers_reused: int) -> None:
        """Count one scored candidate's layer evaluations and how many were reused."""
        self._candidates += 1
        self._run += layers_run
        self._reused += layers_reused

    def reset_stats(self) -> None:
        """Zero the reuse counters (the cached tensors stay)."""
        self._candidates = self._run = self._reused = 0

    def stats(self) -> CacheStats:
        """The reuse counters and the bytes held."""
        return CacheStats(candidates=self._candidates, layers_run=self._run,
                          layers_reused=self._reused, bytes_held=self._bytes,
                          capacity=self.capacity)
