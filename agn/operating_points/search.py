"""NSGA-II over all operating points jointly: one genome holds every point's assignment.

The genome is the concatenation of P per-layer genomes over one :class:`~agn.search.SearchSpace`
(genes in power order); the objectives are every point's energy and error (2P, all minimised);
for a fixed catalog the constraint ``distinct circuits - K <= 0`` keeps the set within K
circuits (MARLIN's levels are all on chip: no constraint), and every candidate is repaired into
it (:meth:`JointSpace.repair`: genes of the least used circuits move to the nearest kept one), so
no evaluation is spent on an infeasible set. The population is seeded with the clustering's
point set (and its perturbations). :func:`compare_with_clustering` spends the same
number of scored networks on jittered clusterings (other tolerance factors and k-means seeds)
and compares both by the hypervolume of (mean energy, mean error) over the points of a set.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.pntx import SinglePointCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize

from agn.search import SearchSpace, hypervolume, initial_population, pareto_indices
from hwlib.assignment import Assignment

ScoreFn = Callable[[Mapping[str, str]], float]


@dataclass
class CachedScorer:
    """Errors of single assignments, each network scored once; ``scored`` counts them (the
    evaluation budget)."""

    score: ScoreFn
    cache: dict[tuple[str, ...], float] = field(default_factory=dict)

    def __call__(self, assignment: Mapping[str, str]) -> float:
        key = tuple(assignment.values())
        if key not in self.cache:
            self.cache[key] = float(self.score(assignment))
        return self.cache[key]

    @property
    def scored(self) -> int:
        """Networks scored so far."""
        return len(self.cache)


@dataclass(frozen=True)
class JointSpace:
    """P points over one per-point space; ``max_circuits`` None: no circuit constraint."""

    space: SearchSpace
    n_points: int
    max_circuits: int | None

    @property
    def n_var(self) -> int:
        """Genome length (P x layers)."""
        return self.n_points * self.space.n_var

    def split(self, genome: np.ndarray) -> list[np.ndarray]:
        """The per-point genomes."""
        g = np.asarray(genome, np.int64)
        if g.shape != (self.n_var,):
            raise ValueError(f"joint genome: expected {self.n_var} genes, got shape {g.shape}")
        return list(g.reshape(self.n_points, self.space.n_var))

    def decode(self, genome: np.ndarray) -> list[dict[str, str]]:
        """Per point, layer -> spec."""
        return [self.space.decode(g) for g in self.split(genome)]

    def encode(self, assignments: Sequence[Assignment | Mapping[str, str]]) -> np.ndarray:
        """The genome of a point set."""
        if len(assignments) != self.n_points:
            raise ValueError(f"joint genome: expected {self.n_points} assignments, got "
                             f"{len(assignments)}")
        return np.concatenate([self.space.encode(a) for a in assignments])

    def circuits(self, genome: np.ndarray) -> int:
        """Distinct multipliers the set uses."""
        return len(set(np.asarray(genome).tolist()))

    def repair(self, genome: np.ndarray) -> np.ndarray:
        """The genome within the circuit limit: a set using more than ``max_circuits``
        multipliers keeps its most used ones (ties: the costlier) and moves every other gene to
        the kept multiplier nearest in relative power (ties: the costlier, more accurate one).
        Sets within the limit are returned unchanged."""
        g = np.asarray(genome, np.int64)
        used, counts = np.unique(g, return_counts=True)
        k = self.max_circuits
        if k is None or len(used) <= k:
            return g
        power = np.asarray(self.space.relative_power)
        kept = used[np.lexsort((-power[used], -counts))[:k]]
        near = {int(u): int(kept[np.lexsort((-power[kept], np.abs(power[kept] - power[u])))[0]])
                for u in used}
        return np.array([near[int(v)] for v in g], np.int64)

    def objectives(self, genome: np.ndarray, score: ScoreFn) -> np.ndarray:
        """(energy_0, error_0, energy_1, error_1, ...)."""
        out = []
        for g in self.split(genome):
            out += [self.space.energy(g), score(self.space.decode(g))]
        return np.array(out)


class _CircuitRepair(Repair):
    """Every offspring within the circuit limit (:meth:`JointSpace.repair`)."""

    def __init__(self, joint: JointSpace) -> None:
        super().__init__()
        self.joint = joint

    def _do(self, problem, X, **kwargs):
        return np.array([self.joint.repair(np.rint(x)) for x in X])


class _Problem(Problem):
    def __init__(self, joint: JointSpace, score: ScoreFn) -> None:
        super().__init__(n_var=joint.n_var, n_obj=2 * joint.n_points,
                         n_ieq_constr=1 if joint.max_circuits else 0, xl=0,
                         xu=joint.space.upper, vtype=int)
        self.joint, self.score = joint, score
        self.history: list[tuple[tuple[int, ...], np.ndarray]] = []

    def _evaluate(self, X, out, *args, **kwargs) -> None:
        F, G = [], []
        for x in X:
            g = np.rint(x).astype(np.int64)
            f = self.joint.objectives(g, self.score)
            F.append(f)
            self.history.append((tuple(int(v) for v in g), f))
            if self.joint.max_circuits:
                G.append([self.joint.circuits(g) - self.joint.max_circuits])
        out["F"] = np.array(F)
        if self.joint.max_circuits:
            out["G"] = np.array(G, dtype=float)


@dataclass(frozen=True)
class JointResult:
    """Every evaluated point set: genome, objectives (2P) and circuit count."""

    joint: JointSpace
    genomes: tuple[tuple[int, ...], ...]
    objectives: np.ndarray

    def feasible(self) -> np.ndarray:
        """Mask of the sets within the circuit limit."""
        k = self.joint.max_circuits
        return np.array([k is None or self.joint.circuits(np.array(g)) <= k
                         for g in self.genomes], bool)

    def summary(self) -> np.ndarray:
        """(n, 2): mean energy and mean error over each set's points."""
        f = self.objectives.reshape(len(self.genomes), -1, 2)
        return f.mean(axis=1)


def joint_search(joint: JointSpace, score: ScoreFn, seeds: Sequence[np.ndarray],
                 pop_size: int = 20, n_gen: int = 10, seed: int = 0) -> JointResult:
    """NSGA-II over point sets (MARLIN's operators: single-point crossover 0.8, polynomial
    mutation 0.8 with eta 3, rounding; every candidate repaired into the circuit limit), seeded
    with ``seeds`` and their perturbations."""
    flat = SearchSpace.build([f"p{p}/{n}" for p in range(joint.n_points)
                              for n in joint.space.layers],
                             list(joint.space.multiplications) * joint.n_points,
                             joint.space.catalog, joint.space.encoding)
    X0 = initial_population(flat, seeds, pop_size, np.random.default_rng(seed))
    problem = _Problem(joint, score)
    algo = NSGA2(pop_size=pop_size, sampling=Population.new("X", X0),
                 crossover=SinglePointCrossover(prob=0.8, repair=RoundingRepair()),
                 mutation=PM(prob=0.8, eta=3.0, vtype=float, repair=RoundingRepair()),
                 repair=_CircuitRepair(joint), eliminate_duplicates=True)
    minimize(problem, algo, ("n_gen", n_gen), seed=seed, verbose=False)
    seen: dict[tuple[int, ...], np.ndarray] = dict(problem.history)
    return JointResult(joint, tuple(seen), np.array(list(seen.values())))


def summary_hypervolume(result: JointResult) -> float:
    """Hypervolume of the feasible sets' (mean energy, mean error) front."""
    s = result.summary()[result.feasible()]
    return hypervolume(s[pareto_indices(s)]) if len(s) else 0.0


def compare_with_clustering(joint: JointSpace, score: CachedScorer,
                            cluster: Callable[[np.random.Generator], Sequence[Assignment]],
                            seeds: Sequence[np.ndarray], pop_size: int, n_gen: int,
                            seed: int = 0) -> dict:
    """Joint NSGA-II against jittered clusterings at the same number of scored networks.

    ``cluster(rng)`` returns one clustering point set (jittered factors, another k-means seed).
    Returns both hypervolumes, the budget and the seed set's summary.
    """
    start = score.scored
    nsga = joint_search(joint, score, seeds, pop_size, n_gen, seed)
    budget = score.scored - start
    baseline = CachedScorer(score.score)
    rng = np.random.default_rng(seed)
    genomes, objectives = [], []
    tries = 0
    while baseline.scored < budget and tries < 50 * max(budget, 1):
        tries += 1
        g = joint.encode(list(cluster(rng)))
        genomes.append(tuple(int(v) for v in g))
        objectives.append(joint.objectives(g, baseline))
    clustered = JointResult(joint, tuple(genomes), np.array(objectives).reshape(-1,
                                                                                2 * joint.n_points))
    first = joint.objectives(np.asarray(seeds[0]), score).reshape(-1, 2).mean(axis=0)
    return {"budget_networks": budget, "nsga_sets": len(nsga.genomes),
            "clustering_sets": len(clustered.genomes),
            "clustering_networks": baseline.scored,
            "nsga_hypervolume": summary_hypervolume(nsga),
            "clustering_hypervolume": summary_hypervolume(clustered),
            "seed_mean_energy": float(first[0]), "seed_mean_error": float(first[1]),
            "nsga": nsga, "clustering": clustered}
