"""NSGA-II over a SearchSpace with per-generation checkpoints and exact resume."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.termination import NoTermination
from pymoo.indicators.hv import HV
from pymoo.operators.crossover.pntx import SinglePointCrossover
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from tqdm.auto import tqdm

from agn.search.initial import initial_population
from agn.search.problem import ApproxProblem, Runner, ScoreFn
from agn.search.space import SearchSpace
from agn.search.store import EvaluationStore
from hwlib.fileio import atomic_write_json

STATE_FILE, STORE_FILE = "search_state.json", "evaluations.jsonl"
HV_REF = (1.0, 1.0)  # (relative energy, error): the exact network scores no volume


@dataclass(frozen=True)
class SearchConfig:
    """NSGA-II settings; defaults follow MARLIN's protocol (population 70, single-point
    crossover 0.8, polynomial mutation 0.8 with eta 3 and rounding).

    ``init`` is ``"seeded"`` (seed genomes, their perturbations, then random) or ``"random"``.
    ``scoring`` names how candidates are scored; it is part of the checkpoint's identity, so a
    search is never resumed with errors measured another way.
    """

    pop_size: int = 70
    n_gen: int = 20
    seed: int = 0
    init: str = "seeded"
    crossover_prob: float = 0.8
    mutation_prob: float = 0.8
    mutation_eta: float = 3.0
    scoring: str = "bit-exact"

    def __post_init__(self) -> None:
        if self.init not in ("seeded", "random"):
            raise ValueError(f"SearchConfig.init: expected 'seeded' or 'random', got {self.init!r}")
        if self.pop_size < 2 or self.n_gen < 1:
            raise ValueError(f"SearchConfig: pop_size >= 2 and n_gen >= 1 expected, got "
                             f"pop_size={self.pop_size}, n_gen={self.n_gen}")


@dataclass(frozen=True)
class SearchResult:
    """Outcome of a search: every scored candidate and the hypervolume after each generation."""

    store: EvaluationStore
    hypervolume: list[float]
    space: SearchSpace

    def front(self) -> list[tuple[tuple[int, ...], float, float]]:
        """Non-dominated (genome, energy, error) over all evaluations, by increasing energy."""
        items = self.store.items()
        idx = pareto_indices(np.array([[s.energy, s.error] for s in items]))
        pts = sorted(((items[i].genome, items[i].energy, items[i].error) for i in idx),
                     key=lambda t: (t[1], t[2]))
        return pts


def pareto_indices(F: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of an (n, 2) objective array (duplicates kept once)."""
    if len(F) == 0:
        return np.zeros(0, dtype=int)
    _, first = np.unique(F, axis=0, return_index=True)
    front = NonDominatedSorting().do(F[np.sort(first)], only_non_dominated_front=True)
    return np.sort(first)[front]


def hypervolume(F: np.ndarray) -> float:
    """Hypervolume of (energy, error) points against the reference point ``HV_REF``."""
    inside = F[(F[:, 0] < HV_REF[0]) & (F[:, 1] < HV_REF[1])] if len(F) else F
    return float(HV(ref_point=np.array(HV_REF))(inside)) if len(inside) else 0.0


def _algorithm(space: SearchSpace, cfg: SearchConfig, X0: np.ndarray | None) -> NSGA2:
    sampling = Population.new("X", X0) if X0 is not None else IntegerRandomSampling()
    return NSGA2(pop_size=cfg.pop_size, sampling=sampling,
                 crossover=SinglePointCrossover(prob=cfg.crossover_prob, repair=RoundingRepair()),
                 mutation=PM(prob=cfg.mutation_prob, eta=cfg.mutation_eta, vtype=float,
                             repair=RoundingRepair()),
                 eliminate_duplicates=True, seed=cfg.seed)


def _identity(space: SearchSpace, cfg: SearchConfig) -> dict:
    """What a checkpoint must share with the requested search to resume it (``n_gen`` is not
    part of it: a search may be extended to more generations)."""
    config = {k: v for k, v in asdict(cfg).items() if k != "n_gen"}
    return {"config": config, **space.identity()}


def _save_state(path: Path, algo: NSGA2, ident: dict, hv: list[float], gen: int,
                store: EvaluationStore) -> None:
    pop = algo.pop
    atomic_write_json(path, {
        "version": 2, **ident, "generation": gen, "n_iter": algo.n_iter,
        "X": pop.get("X").astype(int).tolist(), "F": pop.get("F").tolist(),
        "rank": pop.get("rank").astype(int).tolist(), "crowding": pop.get("crowding").tolist(),
        "rng": algo.random_state.bit_generator.state, "hypervolume": hv,
        "evaluated": [[*s.genome, s.generation] for s in store.items()]})


_STATE_KEYS = ("config", "layers", "candidates", "encoding", "generation", "n_iter", "X", "F",
               "rank", "crowding", "rng", "hypervolume")


def _load_state(path: Path) -> dict:
    """A search checkpoint, or a ValueError naming the file and what to do."""
    todo = (f"delete {path} to restart the search from its stored evaluations (none is scored "
            f"twice), or use another run directory")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable search checkpoint ({exc}); {todo}") from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"{path}: not a complete search checkpoint (missing {missing}); {todo}")
    return state


def _restore(algo: NSGA2, state: dict) -> None:
    n = len(state["X"])
    pop = Population.new("X", np.array(state["X"], dtype=float), "F", np.array(state["F"]),
                         "rank", np.array(state["rank"]),
                         "crowding", np.array(state["crowding"], dtype=float),
                         "CV", np.zeros((n, 1)))
    algo.pop, algo.is_initialized, algo.n_iter = pop, True, state["n_iter"]
    algo.start_time = time.time()
    algo.random_state.bit_generator.state = state["rng"]
    algo._set_optimum()


def _rescore_lost(problem: ApproxProblem, state: dict) -> None:
    """Score again the evaluations the checkpoint lists but the store lost (a cut or truncated
    evaluations.jsonl), under their own generations, so the front never silently drops one."""
    by_gen: dict[int, list[tuple[int, ...]]] = {}
    for rec in state.get("evaluated", ()):  # absent in version-1 checkpoints
        genome = tuple(int(v) for v in rec[:-1])
        if genome not in problem.store:
            by_gen.setdefault(int(rec[-1]), []).append(genome)
    for gen, genomes in sorted(by_gen.items()):
        problem.ensure(genomes, gen)


def run_search(space: SearchSpace, score: ScoreFn, cfg: SearchConfig,
               run_dir: str | Path | None = None, seeds: Sequence[np.ndarray] = (),
               runner: Runner | None = None, progress: bool = True) -> SearchResult:
    """Run (or resume) NSGA-II; checkpoints after every generation when ``run_dir`` is given.

    A run directory holding a checkpoint of the same space and configuration resumes after its
    last finished generation; candidates scored before a kill are read back from the store and
    never scored again, and those the checkpoint lists but the store lost are scored again. A
    finished search asked for more generations continues (exactly as an uninterrupted longer
    run would); a checkpoint of a different search, or an unreadable one, is refused naming the
    file.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    store = EvaluationStore(run_dir / STORE_FILE if run_dir else None)
    ident = _identity(space, cfg)
    state = None
    if run_dir is not None and (run_dir / STATE_FILE).exists():
        state = _load_state(run_dir / STATE_FILE)
        theirs = {k: state.get(k) for k in ident}
        # a setting added after the checkpoint was written counts as its default
        theirs["config"] = {k: v for k, v in {**asdict(SearchConfig()),
                                              **(theirs["config"] or {})}.items() if k != "n_gen"}
        if theirs != ident:
            diff = {k: (theirs["config"].get(k), v) for k, v in ident["config"].items()
                    if theirs["config"].get(k) != v}
            diff.update({k: "differ" for k in ("layers", "candidates", "encoding")
                         if theirs[k] != ident[k]})
            raise ValueError(f"{run_dir / STATE_FILE} belongs to a different search "
                             f"(recorded -> requested: {diff}); use another run directory or "
                             f"delete it to start over")
    X0 = None
    if cfg.init == "seeded" and state is None:
        X0 = initial_population(space, seeds, cfg.pop_size, np.random.default_rng(cfg.seed))
    algo = _algorithm(space, cfg, X0)
    problem = ApproxProblem(space, score, store, runner)
    algo.setup(problem, termination=NoTermination(), seed=cfg.seed)
    hv: list[float] = []
    start = 0
    if state is not None:
        _restore(algo, state)
        hv, start = list(state["hypervolume"]), state["generation"]
        if start > cfg.n_gen:
            raise ValueError(f"{run_dir / STATE_FILE}: the search already ran {start} "
                             f"generations; ask for n_gen >= {start} (more extends it)")
        _rescore_lost(problem, state)
    bar = tqdm(total=cfg.n_gen, initial=start, desc="NSGA-II generations", unit="gen",
               disable=not progress)
    for gen in range(start + 1, cfg.n_gen + 1):
        problem.generation = gen
        pop = algo.ask()
        algo.evaluator.eval(problem, pop)
        algo.tell(infills=pop)
        hv.append(hypervolume(store.objectives()[pareto_indices(store.objectives())]))
        if run_dir is not None:
            _save_state(run_dir / STATE_FILE, algo, ident, hv, gen, store)
        bar.update(1)
        bar.set_postfix(evaluated=len(store), hv=f"{hv[-1]:.4f}")
    bar.close()
    return SearchResult(store, hv, space)
