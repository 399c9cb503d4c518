"""Initial populations: seed genomes from the error model, their perturbations, then random."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agn.search.space import SearchSpace


def initial_population(space: SearchSpace, seeds: Sequence[np.ndarray], pop_size: int,
                       rng: np.random.Generator, perturbed_fraction: float = 0.5) -> np.ndarray:
    """(pop_size, n_var) integer genomes: unique seeds first, then perturbations of the seeds
    (a few genes moved by 1-3 candidates) up to ``perturbed_fraction`` of the population, then
    uniformly random genomes. Without seeds the whole population is random.
    """
    rows: list[tuple[int, ...]] = []

    def push(g: np.ndarray) -> None:
        t = tuple(int(v) for v in np.clip(g, 0, space.upper))
        if t not in rows and len(rows) < pop_size:
            rows.append(t)

    checked = [space.check(s) for s in seeds]
    for s in checked:
        push(s)
    target = max(len(rows), int(round(perturbed_fraction * pop_size)))
    attempts = 0
    while checked and len(rows) < target and attempts < 50 * pop_size:
        attempts += 1
        g = checked[rng.integers(len(checked))].copy()
        k = rng.integers(1, max(2, space.n_var // 2) + 1)
        pos = rng.choice(space.n_var, size=min(k, space.n_var), replace=False)
        g[pos] += rng.integers(1, 4, size=len(pos)) * rng.choice([-1, 1], size=len(pos))
        push(g)
    while len(rows) < pop_size:
        push(rng.integers(0, space.upper + 1, size=space.n_var))
    return np.array(rows, dtype=np.int64)
