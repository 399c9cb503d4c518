"""The pymoo problem: objectives (relative multiplication energy, validation error) per genome."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from pymoo.core.problem import Problem

from agn.search.space import SearchSpace
from agn.search.store import EvaluationStore, Scored

#: Scores one assignment (layer name -> spec): returns the validation error (1 - accuracy).
ScoreFn = Callable[[Mapping[str, str]], float]
#: Applies a score function to a list of assignments, yielding (index, error) as each finishes.
Runner = Callable[[ScoreFn, list], Iterator[tuple[int, float]]]


def serial_runner(f: ScoreFn, items: list) -> Iterator[tuple[int, float]]:
    """Score in this process, one candidate after the other."""
    for i, item in enumerate(items):
        yield i, f(item)


class ApproxProblem(Problem):
    """Two objectives to minimise: energy (exact, from the power table) and error (scored).

    Genomes already in the store are never scored again; new ones are scored through
    ``runner`` (serial by default, or Dask) and each is recorded the moment it finishes.
    """

    def __init__(self, space: SearchSpace, score: ScoreFn, store: EvaluationStore,
                 runner: Runner | None = None) -> None:
        super().__init__(n_var=space.n_var, n_obj=2, xl=0, xu=space.upper, vtype=int)
        self.space, self.score, self.store = space, score, store
        self.runner = runner or serial_runner
        self.generation = 0

    def ensure(self, genomes: Sequence[tuple[int, ...]], generation: int) -> int:
        """Score the genomes the store does not hold yet, recording them under ``generation``;
        returns how many were scored."""
        todo = list(dict.fromkeys(g for g in genomes if g not in self.store))
        if todo:
            for i, err in self.runner(self.score, [self.space.decode(g) for g in todo]):
                err = float(err)
                if not 0.0 <= err <= 1.0:
                    raise ValueError(f"score function returned error {err} for {todo[i]}; "
                                     f"expected a fraction in [0, 1]")
                self.store.add(Scored(todo[i], self.space.energy(todo[i]), err, generation))
        return len(todo)

    def _evaluate(self, X: np.ndarray, out: dict, *args, **kwargs) -> None:
        genomes = [tuple(int(v) for v in self.space.check(np.rint(x))) for x in X]
        self.ensure(genomes, self.generation)
        out["F"] = np.array([[self.store[g].energy, self.store[g].error] for g in genomes])
