"""The operating points' plot against the single-point front and their report section."""
from __future__ import annotations

import json
from pathlib import Path

from agn.operating_points.points_file import POINTS_FILE, OperatingPointSet, read_points
from agn.pipeline.report import percent
from hwlib.fileio import atomic_path

PLOT_FILE = "operating_points.png"


def plot_points(path: Path, points: OperatingPointSet, front: list[dict] | None) -> Path:
    """Energy against validation accuracy: the points (retrained jointly, integer network) over
    the single-point NSGA-II front (``pareto.json``'s, scored by the search before retraining)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    if front:
        pts = sorted((r["energy"], r["accuracy"]) for r in front)
        ax.step([e for e, _ in pts], [a for _, a in pts], where="post", c="0.5",
                label="single-point front (search scorer)")
        ax.scatter([e for e, _ in pts], [a for _, a in pts], s=10, c="0.5")
    for p in points.points:
        ax.scatter([p.energy], [float("nan") if p.val_accuracy is None else p.val_accuracy],
                   marker="*", s=140, zorder=5,
                   label=f"{p.name} (factor {p.factor})")
    exact = points.exact.get("val_accuracy")
    if exact is not None:
        ax.axhline(exact, c="C3", lw=1, ls="--", label="exact integer network")
    ax.set_xlabel("relative multiplication energy")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{len(points.points)} operating points over {len(points.circuits)} circuits")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path


def report_section(run_dir: str | Path) -> list[str]:
    """Markdown lines of the report's operating-points section (none without the file)."""
    run = Path(run_dir)
    if not (run / POINTS_FILE).exists():
        return []
    s = read_points(run)
    d = s.details
    limit = (f"at most {s.max_circuits} circuits" if s.max_circuits
             and not d.get("reconfigurable") else "no circuit limit (every level on chip)")
    L = ["## Runtime operating points", "", f"![operating points]({PLOT_FILE})", "",
         f"{len(s.points)} operating points over catalog `{s.catalog}` ({limit}; "
         f"{len(s.circuits)} distinct circuits used: "
         f"{', '.join(f'`{c}`' for c in s.circuits)}), tolerance factors "
         f"{list(s.factors)}, retrained jointly with shared weights for {d.get('epochs')} "
         f"epoch(s). Accuracies are the integer networks' (bit-exact); the exact integer "
         f"network scores {percent(s.exact.get('test_accuracy'))} on the test split.", "",
         "| point | factor | energy | validation accuracy | test accuracy | loss vs exact | "
         "extra parameters |", "|---|---|---|---|---|---|---|"]
    ex = s.exact.get("test_accuracy")
    for p in s.points:
        loss = "n/a" if ex is None or p.test_accuracy is None else \
            f"{100 * (ex - p.test_accuracy):.2f} pp"
        L.append(f"| {p.name} | {p.factor} | {p.energy:.4f} | {percent(p.val_accuracy)} | "
                 f"{percent(p.test_accuracy)} | {loss} | {p.extra_parameters} "
                 f"({percent(p.parameter_overhead)}) |")
    v = d.get("validation", {})
    L += ["", f"Firmware with every point (`operating_points/firmware/`, "
          f"`<prefix>_set_operating_point(i)`): {v.get('mismatches')} mismatches against the "
          f"reference over the switch sequence {v.get('sequence')}; each extra point costs "
          f"{v.get('bytes_per_extra_point')} bytes of tables.", ""]
    return L


def front_of(run_dir: Path) -> list[dict] | None:
    """The single-point front of a run (``pareto.json``), or None."""
    path = Path(run_dir) / "pareto.json"
    return json.loads(path.read_text())["front"] if path.exists() else None
