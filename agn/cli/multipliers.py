"""``agn multipliers``: list a multiplier catalog, show one multiplier, plot error against power.

Never imports torch: characterising multipliers needs hwlib (numpy) and matplotlib only.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import hwlib
from hwlib.fileio import atomic_path
from hwlib.multiplier import Multiplier

METRICS = ("mae_pct", "wce_pct", "mre_pct", "ep_pct", "mse", "mean", "std")
COLUMNS = ("spec", "MAE%", "WCE%", "EP%", "mean", "std", "power mW", "rel. power", "power source")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``agn multipliers``."""
    p = subparsers.add_parser(
        "multipliers", help="list, show and plot approximate multipliers",
        description="Error metrics (uniform operands over each multiplier's domains) and power of "
        "a multiplier catalog. Specs: marlin:17, bam:v5h2, tm:k3, trunc:k4c, perf:m2s0, drum:k6, "
        "mitchell:8, roba:8, roup:r4p1, evo:mul8s_1KX5, file:path/mul8u_X.c; wildcards such as "
        "'marlin:*', 'evo:mul8s_*', 'bam:v*h2'; comma lists.")
    p.add_argument("--catalog", default="marlin:*",
                   help="catalog spec: comma list with wildcards (default: %(default)s)")
    p.add_argument("--show", metavar="SPEC", help="describe one multiplier instead of the table")
    p.add_argument("--plot", metavar="OUT.png", help="plot error against relative power")
    p.add_argument("--metric", choices=METRICS, default="std",
                   help="error metric on the plot's y axis (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``agn multipliers``."""
    try:
        if args.show:
            print(describe(hwlib.get(args.show)))
            return 0
        mults = hwlib.catalog(args.catalog)
        rows = [(m, m.metrics()) for m in _progress(mults)]
        print(format_table(rows))
        if args.plot:
            plot(rows, args.plot, args.metric, title=args.catalog)
            print(f"wrote {args.plot}")
    except (ValueError, TypeError, FileNotFoundError, PermissionError) as exc:
        print(f"agn multipliers: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _progress(mults: Sequence[Multiplier]) -> Sequence[Multiplier]:
    """Yield the multipliers, reporting progress on stderr for long catalogs."""
    if len(mults) < 64 or not sys.stderr.isatty():
        return mults
    from tqdm import tqdm

    return tqdm(mults, desc="metrics", unit="mult", leave=False)


def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def format_table(rows: Sequence[tuple[Multiplier, dict[str, float]]]) -> str:
    """Plain-text table: spec, MAE%, WCE%, EP%, mean, std, power mW, relative power, source."""
    body = [(m.spec, _num(r["mae_pct"]), _num(r["wce_pct"]), _num(r["ep_pct"]), _num(r["mean"]),
             _num(r["std"]), _num(m.power_mw), f"{m.relative_power:.3f}", m.power.label)
            for m, r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c)
              for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def describe(m: Multiplier) -> str:
    """Multi-line description: domains, metrics, power with its source, factor rank."""
    met = m.metrics()
    nx = m.network_x_domain()
    lines = [f"spec           {m.spec}", f"class          {type(m).__name__}",
             f"x domain       {m.x_domain.name} [{m.x_domain.lo}, {m.x_domain.hi}] "
             f"(networks feed [{nx.lo}, {nx.hi}])",
             f"w domain       {m.w_domain.name} [{m.w_domain.lo}, {m.w_domain.hi}]"]
    circuit = getattr(m, "circuit", None)
    if circuit is not None:
        lines.append(f"circuit        {circuit.spec} (uint8 x uint8; weights in sign magnitude)")
    lines += [f"{k:<14} {met[k]:.6g}" for k in METRICS]
    lines.append(f"power          {_num(m.power_mw)} mW, relative {m.relative_power:.4f}, "
                 f"{m.power.label}")
    f = m.factors()
    lines.append("factors        none (no low-rank form; use the table)" if f is None else
                 f"factors        rank {f.rank}, f in {list(f.f_range)}, g in {list(f.g_range)}")
    if circuit is not None:
        cm = circuit.metrics()
        lines.append("circuit error  " + ", ".join(f"{k} {cm[k]:.6g}" for k in METRICS))
    return "\n".join(lines)


def plot(rows: Sequence[tuple[Multiplier, dict[str, float]]], out: str, metric: str,
         title: str = "") -> None:
    """Scatter ``metric`` against relative power; proxies hollow; written atomically to ``out``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.subplots()
    groups: dict[tuple[str, bool], list[tuple[float, float, str]]] = {}
    for m, r in rows:
        key = (m.spec.split(":")[0], m.power.proxy)
        groups.setdefault(key, []).append((m.relative_power, r[metric], m.spec))
    for n, ((family, proxy), pts) in enumerate(sorted(groups.items())):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        label = f"{family} ({'proxy power' if proxy else 'power: ' + _source(rows, family)})"
        color = f"C{n % 10}"
        ax.scatter(xs, ys, s=14, label=label, facecolors="none" if proxy else color,
                   edgecolors=color)
        if len(rows) <= 30:
            for x, y, s in pts:
                ax.annotate(s, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    front = pareto_front([(m.relative_power, r[metric]) for m, r in rows])
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="0.4",
                linewidth=0.8, label="Pareto front")
    ax.set_xlabel("power relative to the exact multiplier of its family")
    ax.set_ylabel(f"{metric} (uniform operands over the multiplier's domains)")
    values = [abs(r[metric]) for _, r in rows if r[metric]]
    if values and max(values) > 100 * min(values):
        ax.set_yscale("symlog", linthresh=min(values))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated in (power, error) (both minimised), by increasing power."""
    front: list[tuple[float, float]] = []
    for p in sorted(set(points), key=lambda q: (q[0], q[1])):
        if not front or p[1] < front[-1][1]:
            front.append(p)
    return front


def _source(rows: Sequence[tuple[Multiplier, dict[str, float]]], family: str) -> str:
    srcs = {m.power.source.split(",")[0] for m, _ in rows if m.spec.split(":")[0] == family}
    return "; ".join(sorted(srcs))
