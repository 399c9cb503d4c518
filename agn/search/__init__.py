"""NSGA-II refinement of multiplier assignments: energy against accuracy, seeded by the error
model."""
from agn.search.initial import initial_population
from agn.search.nsga import SearchConfig, SearchResult, hypervolume, pareto_indices, run_search
from agn.search.outputs import Point, front_records, plot_front, uniform_genes, write_front
from agn.search.parallel import dask_runner
from agn.search.problem import ApproxProblem, serial_runner
from agn.search.space import Encoding, SearchSpace, SearchSpaceError
from agn.search.store import EvaluationStore, Scored

__all__ = [
    "ApproxProblem", "Encoding", "EvaluationStore", "Point", "Scored", "SearchConfig",
    "SearchResult",
    "SearchSpace", "SearchSpaceError", "dask_runner", "hypervolume", "initial_population",
    "front_records", "pareto_indices", "plot_front", "run_search", "serial_runner",
    "uniform_genes", "write_front",
]
