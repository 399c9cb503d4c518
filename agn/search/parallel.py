"""Candidate evaluation on Dask: a local cluster of N workers or an existing scheduler."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agn.search.problem import ScoreFn


class DaskRunner:
    """A :data:`~agn.search.problem.Runner` scoring on a Dask client, yielding results as they
    complete. Each score function is scattered once to every worker, so each worker keeps one
    copy of it (its prefix cache included) across generations; :meth:`each_worker` reads those
    copies."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._shipped: dict[int, tuple[ScoreFn, Any]] = {}  # id(f) -> (f, its scattered copy)

    def __call__(self, f: ScoreFn, items: list) -> Iterator[tuple[int, float]]:
        from distributed import as_completed

        if id(f) not in self._shipped:
            self._shipped[id(f)] = (f, self.client.scatter(f, broadcast=True))
        scattered = self._shipped[id(f)][1]
        futures = {self.client.submit(_apply, scattered, item, pure=False): i
                   for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

    def each_worker(self, f: ScoreFn, fn: Callable[[Any], Any]) -> list:
        """``fn(copy)`` of every worker's copy of ``f``, one per worker (none when ``f`` was
        never scored here), e.g. to gather each copy's cache statistics."""
        if id(f) not in self._shipped:
            return []
        scattered = self._shipped[id(f)][1]
        futures = [self.client.submit(fn, scattered, workers=[addr], allow_other_workers=False,
                                      pure=False)
                   for addr in self.client.scheduler_info()["workers"]]
        return self.client.gather(futures)


@contextmanager
def dask_runner(workers: int | None = None, scheduler: str | None = None) -> Iterator[DaskRunner]:
    """A runner scoring candidates on Dask, yielding results as they complete.

    Args:
        workers: start a local cluster with this many single-threaded worker processes.
        scheduler: address of an existing scheduler (``tcp://host:8786``) to join instead.
    """
    from distributed import Client, LocalCluster

    if (workers is None) == (scheduler is None):
        raise ValueError(f"dask_runner: give exactly one of workers ({workers}) or scheduler "
                         f"({scheduler!r})")
    if workers is not None and workers < 1:
        raise ValueError(f"dask_runner: workers must be >= 1, got {workers}")
    cluster = (LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=None) if workers else None)
    client = Client(cluster if cluster is not None else scheduler)
    try:
        yield DaskRunner(client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _apply(f: ScoreFn, item: object) -> float:
    return f(item)  # type: ignore[arg-type]
