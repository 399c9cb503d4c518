"""The joint method of the operating-points stage: NSGA-II over all points, seeded by the
clustering, compared with jittered clusterings at the same number of scored networks.

Candidates are scored on the noise-trained integer network without retraining (validation
error, bit-exact). The set kept is the feasible one that weakly dominates the clustering's set on
every point's energy and error, with points as distinct as its, at the lowest total energy
(ties: the lowest total error); the clustering's set itself qualifies, so the joint method never
does worse than it on what the search scores. The comparison and the choice are recorded in
``operating_points.json``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import errormodels as em
from agn.operating_points.search import (
    CachedScorer,
    JointResult,
    JointSpace,
    ScoreFn,
    compare_with_clustering,
)
from agn.operating_points.selection import select_points
from agn.search import SearchSpace
from hwlib.assignment import Assignment

#: Spread (log-normal sigma) of the tolerance factors of the jittered clusterings.
JITTER = 0.3


@dataclass(frozen=True, kw_only=True)
class JointSettings:
    """Budget of the joint search: NSGA-II population and generations, and a seed."""

    pop_size: int = 20
    n_gen: int = 10
    seed: int = 0


def choose_set(result: JointResult, seed: np.ndarray) -> tuple[int, ...]:
    """The genome of the feasible set weakly dominating ``seed`` (an evaluated genome) on every
    objective, with at least as many distinct points, and the lowest total energy (ties: the
    lowest total error)."""
    key = tuple(int(v) for v in seed)
    if key not in result.genomes:
        raise ValueError("joint search: the clustering's set was not evaluated")
    f = result.objectives
    ref = f[result.genomes.index(key)]

    def distinct(g: tuple[int, ...]) -> int:
        return len({tuple(p) for p in result.joint.split(np.array(g))})

    ok = (result.feasible() & np.all(f <= ref + 1e-12, axis=1)
          & (np.array([distinct(g) for g in result.genomes]) >= distinct(key)))
    idx = np.flatnonzero(ok)
    energy, error = f[idx, 0::2].sum(axis=1), f[idx, 1::2].sum(axis=1)
    best = idx[np.lexsort((error, energy))[0]]
    return result.genomes[int(best)]


def joint_points(score: ScoreFn, sigmas: Sequence[em.LayerSigma],
                 stats: Sequence[em.OperandStats], catalog: em.ErrorCatalog,
                 clustered: Sequence[Assignment], factors: Sequence[float],
                 max_circuits: int | None, settings: JointSettings = JointSettings(),
                 log: Callable[[str], None] = print
                 ) -> tuple[tuple[Assignment, ...], dict[str, Any]]:
    """Joint NSGA-II seeded by ``clustered`` (one assignment per factor), and the record of its
    equal-budget comparison with jittered clusterings (see the module docstring).

    Args:
        score: validation error of a layer -> spec mapping.
        sigmas, stats, catalog: what ``clustered`` was selected from.
        clustered: the clustering's point set (the seed).
        factors: the points' tolerance factors.
        max_circuits: distinct circuits allowed (None or a reconfigurable catalog: no limit).

    Returns:
        The chosen point set (in point order) and the comparison record.
    """
    pairs = em.pair_with_stats(sigmas, stats)
    space = SearchSpace.build([sg.name for sg, _ in pairs],
                              [st.multiplications for _, st in pairs], catalog.catalog)
    limit = None if catalog.catalog.is_reconfigurable else max_circuits
    joint = JointSpace(space, len(clustered), limit)
    pred = em.predict([st for _, st in pairs], catalog)

    def cluster(rng: np.random.Generator) -> tuple[Assignment, ...]:
        jittered = np.asarray(factors) * np.exp(rng.normal(0, JITTER, len(factors)))
        return select_points(sigmas, stats, catalog, sorted(jittered), max_circuits, pred,
                             seed=int(rng.integers(2**31)))

    seed = joint.encode(list(clustered))
    out = compare_with_clustering(joint, CachedScorer(score), cluster, [seed],
                                  settings.pop_size, settings.n_gen, settings.seed)
    nsga: JointResult = out["nsga"]
    chosen = choose_set(nsga, seed)
    f_seed = nsga.objectives[nsga.genomes.index(tuple(int(v) for v in seed))]
    f_chosen = nsga.objectives[nsga.genomes.index(chosen)]
    method = (f"joint NSGA-II ({settings.pop_size} x {settings.n_gen}) seeded by the "
              f"clustering" + (f", at most {limit} circuits" if limit else ""))
    sets = tuple(space.assignment(g, rule="qos-nets-joint",
                                  details={"factor": float(s), "method": method})
                 for g, s in zip(joint.split(np.array(chosen)), factors))
    record = {
        "pop_size": settings.pop_size, "n_gen": settings.n_gen, "seed": settings.seed,
        "budget_networks": out["budget_networks"], "nsga_sets": out["nsga_sets"],
        "clustering_sets": out["clustering_sets"],
        "clustering_networks": out["clustering_networks"],
        "nsga_hypervolume": out["nsga_hypervolume"],
        "clustering_hypervolume": out["clustering_hypervolume"],
        "improved": tuple(int(v) for v in seed) != chosen,
        "clustering_set": _pairs(f_seed), "chosen_set": _pairs(f_chosen)}
    log(f"[operating-points] joint NSGA-II vs jittered clusterings at "
        f"{out['budget_networks']} scored networks each: hypervolume "
        f"{out['nsga_hypervolume']:.4f} vs {out['clustering_hypervolume']:.4f}; "
        f"{'a set dominating the clustering kept' if record['improved'] else 'clustering kept'}")
    return sets, record


def _pairs(objectives: np.ndarray) -> list[dict[str, float]]:
    """Per point, the scored energy and validation error."""
    return [{"energy": float(e), "error": float(r)} for e, r in objectives.reshape(-1, 2)]
