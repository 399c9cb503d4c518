"""Candidate evaluation on Dask: a local cluster of N workers or an existing scheduler."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agn.search.problem import Runner, ScoreFn


@contextmanager
def dask_runner(workers: int | None = None, scheduler: str | None = None) -> Iterator[Runner]:
    """A runner scoring candidates on Dask, yielding results as they complete.

    Args:
        workers: start a local cluster with this many single-threaded worker processes.
        scheduler: address of an existing scheduler (``tcp://host:8786``) to join instead.
    """
    from distributed import Client, LocalCluster, as_completed

    if (workers is None) == (scheduler is None):
        raise ValueError(f"dask_runner: give exactly one of workers ({workers}) or scheduler "
                         f"({scheduler!r})")
    if workers is not None and workers < 1:
        raise ValueError(f"dask_runner: workers must be >= 1, got {workers}")
    cluster = (LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=None) if workers else None)
    client = Client(cluster if cluster is not None else scheduler)
    shipped: dict[int, object] = {}  # one scattered copy of each score function per cluster
    try:
        def run(f: ScoreFn, items: list) -> Iterator[tuple[int, float]]:
            if id(f) not in shipped:
                shipped[id(f)] = (f, client.scatter(f, broadcast=True))
            scattered = shipped[id(f)][1]
            futures = {client.submit(_apply, scattered, item, pure=False): i
                       for i, item in enumerate(items)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()

        yield run
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _apply(f: ScoreFn, item: object) -> float:
    return f(item)  # type: ignore[arg-type]
