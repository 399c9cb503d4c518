"""Search outputs in the run directory: pareto.csv/.json, hypervolume.csv and pareto.png."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agn.search.nsga import SearchResult
from agn.search.space import SearchSpace
from hwlib.blocks import as_blocks, describe
from hwlib.fileio import atomic_path, atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Point:
    """One scored assignment shown beside the front (seed point, uniform assignment...);
    ``test_error`` is its error on the test split when it was measured there."""

    label: str
    genome: tuple[int, ...]
    energy: float
    error: float
    test_error: float | None = None


def front_records(result: SearchResult) -> list[dict]:
    """Pareto points as records: genome, assignment, energy, error, accuracy."""
    space = result.space
    return [{"genome": list(g), "assignment": _jsonable(space.decode(g)), "energy": e,
             "error": err, "accuracy": 1.0 - err} for g, e, err in result.front()]


def _jsonable(specs: dict) -> dict:
    """Layer -> spec, or its groups as JSON objects (filter granularity)."""
    return {n: s if isinstance(s, str) else [b.to_json() for b in s] for n, s in specs.items()}


def write_front(result: SearchResult, run_dir: str | Path, name: str = "pareto",
                columns: Mapping[str, Sequence] | None = None,
                meta: Mapping[str, object] | None = None) -> list[dict]:
    """Write ``<name>.csv`` and ``<name>.json`` (front) and ``hypervolume.csv``; return records.

    ``columns`` adds one value per front point (in front order) to each record and CSV row (e.g.
    the accuracy on held-out splits); ``meta`` adds top-level fields to the JSON. Only results go
    here (a resumed search writes the same bytes); how the scoring ran (the prefix cache's reuse)
    belongs in the stage summary.
    """
    run_dir = Path(run_dir)
    recs = front_records(result)
    extra = dict(columns or {})
    for k, v in extra.items():
        if len(v) != len(recs):
            raise ValueError(f"write_front: column {k!r} holds {len(v)} values for a front of "
                             f"{len(recs)} points")
    recs = [{**r, **{k: v[i] for k, v in extra.items()}} for i, r in enumerate(recs)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["energy", "accuracy", "error", *extra, "genome", *result.space.layers])
    for r in recs:
        w.writerow([f"{r['energy']:.6f}", f"{r['accuracy']:.6f}", f"{r['error']:.6f}",
                    *(_cell(r[k]) for k in extra), " ".join(map(str, r["genome"])),
                    *(describe(as_blocks(s)) if isinstance(s, list) else s
                      for s in r["assignment"].values())])
    atomic_write_text(run_dir / f"{name}.csv", buf.getvalue())
    atomic_write_json(run_dir / f"{name}.json", {
        "layers": list(result.space.layers), "multiplications": list(result.space.multiplications),
        "catalog": list(result.space.candidates), "encoding": result.space.encoding.value,
        "power_source": result.space.power_source, "evaluations": len(result.store),
        "hypervolume": result.hypervolume, **dict(meta or {}), "front": recs})
    hv = "generation,hypervolume\n" + "".join(f"{i + 1},{v:.8f}\n"
                                              for i, v in enumerate(result.hypervolume))
    atomic_write_text(run_dir / f"{name.replace('pareto', 'hypervolume')}.csv", hv)
    return recs


def _cell(v: object) -> str:
    return f"{v:.6f}" if isinstance(v, float) else str(v)


def uniform_genes(space: SearchSpace, count: int) -> list[int]:
    """Up to ``count`` gene values spread evenly over the candidates (all if fewer)."""
    n = len(space.candidates)
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, min(count, n))})


def plot_front(path: str | Path, result: SearchResult, points: Sequence[Point] = (),
               baseline: SearchResult | None = None, title: str = "",
               heldout: Sequence[tuple[float, float]] = (), heldout_label: str = "",
               split: str = "validation") -> Path:
    """Draw the front (energy vs accuracy on the search's ``split``), the baseline front, labelled
    points and the front re-scored on a held-out split (``heldout``: (energy, accuracy) pairs,
    drawn as open circles labelled ``heldout_label``) to a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    allF = result.store.objectives()
    ax.scatter(allF[:, 0], 100 * (1 - allF[:, 1]), s=6, c="0.8", label="evaluated")
    f = np.array([[e, err] for _, e, err in result.front()])
    ax.step(f[:, 0], 100 * (1 - f[:, 1]), where="post", c="C0", marker="o", ms=3,
            label="Pareto front (seeded)" if baseline is not None else "Pareto front")
    if baseline is not None and len(baseline.store):
        b = np.array([[e, err] for _, e, err in baseline.front()])
        ax.step(b[:, 0], 100 * (1 - b[:, 1]), where="post", c="C3", marker="x", ms=3,
                label="Pareto front (random init)")
    uni = [p for p in points if p.label.startswith("uniform")]
    if uni:
        ax.scatter([p.energy for p in uni], [100 * (1 - p.error) for p in uni], marker="s", s=14,
                   c="C2", label="uniform assignments")
    for p in points:
        if not p.label.startswith("uniform"):
            ax.scatter([p.energy], [100 * (1 - p.error)], marker="*", s=120, zorder=5,
                       label=p.label)
    if len(heldout):
        h = np.asarray(heldout, dtype=float).reshape(-1, 2)
        ax.scatter(h[:, 0], 100 * h[:, 1], s=30, facecolors="none", edgecolors="k", zorder=4,
                   label=heldout_label or "front on a held-out split")
    ax.set_xlabel(f"relative multiplication energy ({result.space.power_source})")
    ax.set_ylabel(f"accuracy (%), {split} split unless labelled")
    ax.set_title(title or "NSGA-II: energy against accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return Path(path)
