"""Append-only store of scored genomes: no candidate is evaluated twice, even across a kill."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwlib.fileio import atomic_path


@dataclass(frozen=True)
class Scored:
    """One evaluated candidate."""

    genome: tuple[int, ...]
    energy: float
    error: float
    generation: int


class EvaluationStore:
    """Scored genomes kept in memory and appended line by line to a JSONL file.

    Each line is flushed and fsynced before the next evaluation starts; a line cut short by a
    kill is dropped on load (the file is rewritten atomically without it) and that candidate is
    evaluated again: by the next generation, or, when the search checkpoint lists it as scored,
    on resume (:func:`agn.search.nsga.run_search`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._items: dict[tuple[int, ...], Scored] = {}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        lines = self.path.read_text().splitlines()
        good = []
        for i, line in enumerate(lines):
            try:
                rec = json.loads(line)
                s = Scored(tuple(int(v) for v in rec["genome"]), float(rec["energy"]),
                           float(rec["error"]), int(rec["generation"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                if i == len(lines) - 1:  # a write cut short by a kill: drop it
                    break
                raise ValueError(f"{self.path}: line {i + 1} is not a scored genome: "
                                 f"{line!r}") from None
            self._items[s.genome] = s
            good.append(line)
        if len(good) != len(lines):
            with atomic_path(self.path) as tmp:
                tmp.write_text("".join(f"{ln}\n" for ln in good))

    def __contains__(self, genome: tuple[int, ...]) -> bool:
        return genome in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, genome: tuple[int, ...]) -> Scored:
        return self._items[genome]

    def add(self, item: Scored) -> None:
        """Record one evaluation (in memory and durably on disk)."""
        self._items[item.genome] = item
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            rec = {"genome": list(item.genome), "energy": item.energy, "error": item.error,
                   "generation": item.generation}
            with self.path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def genomes(self) -> list[tuple[int, ...]]:
        """All evaluated genomes, in insertion order."""
        return list(self._items)

    def items(self) -> list[Scored]:
        """All evaluations, in insertion order."""
        return list(self._items.values())

    def objectives(self) -> np.ndarray:
        """(n, 2) array of (energy, error) of all evaluations."""
        return np.array([[s.energy, s.error] for s in self._items.values()]).reshape(-1, 2)
