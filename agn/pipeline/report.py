"""``report.md`` of a pipeline run, with its figures (sigmas, tolerances, Pareto front)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import errormodels as em
from agn.pipeline.holdout import CHANCE_MARGIN, dominated_share
from agn.pipeline.retrain_front import RETRAINED_FILE
from agn.run import CHOSEN_FILE, STATUS_FILE, pipeline_config, read_status
from hwlib.blocks import describe
from hwlib.fileio import atomic_path, atomic_write_text


def plot_sigmas(path: Path, sigmas: list[em.LayerSigma]) -> Path:
    """Bar chart of the learned |sigma| per layer; a layer with per-channel sigmas shows its
    channels as points over the bar (their quadratic mean) and their range as a line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.bar(range(len(sigmas)), [s.sigma for s in sigmas], color="C0")
    spread = [(i, np.abs(np.asarray(s.channel_sigmas))) for i, s in enumerate(sigmas)
              if s.channel_sigmas]
    for k, (i, c) in enumerate(spread):
        ax.vlines(i, c.min(), c.max(), color="k", lw=1)
        ax.scatter(i + np.linspace(-0.3, 0.3, len(c)), c, s=4, color="C1", zorder=3,
                   label="per channel" if k == 0 else None)
    if spread:
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(sigmas)), [s.name for s in sigmas], rotation=45, ha="right",
                  fontsize=7)
    ax.set_ylabel("learned |sigma| (relative noise)")
    ax.set_title("Noise tolerance learned per layer")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path


def plot_tolerances(path: Path, asg: em.Assignment, catalog: em.ErrorCatalog,
                    pred: em.Prediction) -> Path:
    """Per layer: every multiplier's predicted error std against its power, the tolerance as a
    horizontal line and the matched multiplier as a star."""
    from matplotlib.figure import Figure

    n = len(asg.layers)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, layer in enumerate(asg.layers):
        ax = axes[i // cols][i % cols]
        ax.scatter(catalog.relative_power, np.maximum(pred.std[i], 1e-3), s=4, c="0.5")
        ax.axhline(layer.tolerance, c="C3", lw=1, label="tolerance")
        ax.scatter([layer.relative_power], [max(layer.predicted_std, 1e-3)], marker="*", s=90,
                   c="C1", zorder=5, label="matched")
        ax.set_yscale("log")
        ax.set_title(layer.name, fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.supxlabel("relative power", fontsize=8)
    fig.supylabel("predicted output error std", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def percent(v: float | None) -> str:
    """``v`` as a percentage with two decimals, ``n/a`` for None."""
    return "n/a" if v is None else f"{100 * v:.2f} %"


def _splits_text(summary: dict, pareto: dict) -> list[str]:
    """The split sizes and what one image weighs on the search split."""
    sizes = summary.get("splits") or pareto.get("splits")
    if not sizes:
        return []
    names = {"train": "training", "search": "search (validation, what candidates are scored on)",
             "confirm": "confirmation (never seen by training or the search)",
             "test": "test"}
    parts = ", ".join(f"{names.get(k, k)} {n}" for k, n in sizes.items())
    return [f"Images per split: {parts}. One image is "
            f"{100 / max(1, sizes['search']):.2f} points of search accuracy."]


def _plot_legend(pareto: dict) -> list[str]:
    """What each plotted point is."""
    return ["In the plot: grey dots are every candidate the seeded search scored (validation "
            "accuracy); the blue steps its Pareto front on the validation split; the red steps "
            "the random-init search's front (when run); green squares the uniform assignments "
            "(every layer on one multiplier); stars the error-model assignment and the chosen "
            "point (validation accuracy)"
            + ("; open circles the seeded front's points re-scored on the test split, which "
               "the search never saw." if "splits" in pareto else ".")]


def _front_table(pareto: dict) -> list[str]:
    """The front with its held-out accuracies; points near chance flagged."""
    held = [k for k in ("confirm", "test") if pareto["front"]
            and f"{k}_accuracy" in pareto["front"][0]]
    head = ["energy", "validation accuracy", *(f"{k} accuracy" for k in held), "note"]
    L = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    chance = pareto.get("chance_accuracy")
    for p in pareto["front"]:
        note = (f"near chance ({percent(chance)})" if p.get("near_chance") else "")
        L.append(f"| {p['energy']:.4f} | {percent(p['accuracy'])} | "
                 + "".join(f"{percent(p[k + '_accuracy'])} | " for k in held) + f"{note} |")
    flagged = sum(bool(p.get("near_chance")) for p in pareto["front"])
    if flagged:
        L += ["", f"{flagged} front point(s) score within {100 * CHANCE_MARGIN:.0f} points of "
              f"chance ({percent(chance)}): they are on the front only because nothing cheaper "
              f"exists, not usable networks."]
    return L


def _uniform_text(run: Path, pareto: dict) -> list[str]:
    """How the uniform assignments fare against the front on the test split."""
    path = run / "search" / "points.json"
    if "splits" not in pareto or not path.exists():
        return []
    uni = [p for p in json.loads(path.read_text()) if p["label"].startswith("uniform")
           and p.get("test_error") is not None]
    if not uni:
        return []
    front = [(p["energy"], p["test_accuracy"]) for p in pareto["front"]]
    share = dominated_share(front, [(p["energy"], 1.0 - p["test_error"]) for p in uni])
    return ["", f"On the test split the seeded front weakly dominates {100 * share:.0f} % of the "
            f"{len(uni)} uniform assignments."]


def _retrained_text(run: Path) -> list[str]:
    """The briefly retrained front points (``search.retrain_points``), before and after."""
    path = run / RETRAINED_FILE
    doc = json.loads(path.read_text()) if path.exists() else {"points": []}
    if not doc["points"]:
        return []
    splits = list(doc["points"][0]["after"])
    L = ["", "## Front points retrained briefly", "",
         f"{len(doc['points'])} points ({doc['epochs']} epoch(s) of approximate retraining "
         f"each{', ' + str(doc['batches']) + ' batches per epoch' if doc['batches'] else ''}): "
         f"accuracy before -> after retraining. The deployed point is the cheapest of these "
         f"and the front's own choice within max_loss on the choice split.", "",
         "| point | energy | " + " | ".join(f"{s} before -> after" for s in splits) + " |",
         "|" + "---|" * (2 + len(splits))]
    for p in doc["points"]:
        L.append(f"| {p['label']} | {p['energy']:.4f} | " + " | ".join(
            f"{percent(p['before'][s])} -> {percent(p['after'][s])}" for s in splits) + " |")
    return L


def _sigma_table(sigmas: list[em.LayerSigma]) -> list[str]:
    """The learned sigmas' table; with per-channel sigmas, a column of their spread."""
    if not any(g.channel_sigmas for g in sigmas):
        return ["| layer | sigma | multiplications | fan-in |", "|---|---|---|---|",
                *(f"| {g.name} | {g.sigma:.4f} | {g.multiplications} | {g.fan_in} |"
                  for g in sigmas)]
    L = ["Sigmas learned per output channel: `sigma` is their quadratic mean.", "",
         "| layer | sigma | channel sigmas min / median / max | multiplications | fan-in |",
         "|---|---|---|---|---|"]
    for g in sigmas:
        c = np.abs(np.asarray(g.channel_sigmas if g.channel_sigmas else [g.sigma]))
        L.append(f"| {g.name} | {g.sigma:.4f} | {c.min():.4f} / {np.median(c):.4f} / "
                 f"{c.max():.4f} | {g.multiplications} | {g.fan_in} |")
    return L


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.md`` (and ``sigmas.png``, ``tolerances.png``) from a run's artifacts."""
    run = Path(run_dir)
    status = read_status(run / STATUS_FILE)
    cfg, done = pipeline_config(run), status["finished"]
    sigmas = em.read_sigmas(run / em.SIGMAS_FILE)
    stats = em.load_stats(run / em.STATS_FILE)
    asg = em.read_assignment(run / em.ASSIGNMENT_FILE)
    catalog = em.ErrorCatalog.build(cfg.catalog)
    pred = em.predict([st for _, st in em.pair_with_stats(sigmas, stats)], catalog)
    plot_sigmas(run / "sigmas.png", sigmas)
    plot_tolerances(run / "tolerances.png", asg, catalog, pred)
    pareto = json.loads((run / "pareto.json").read_text())
    chosen = em.read_assignment(run / CHOSEN_FILE)
    validation = json.loads((run / "validation.json").read_text())
    s, ex, dep = done["search"], done["export"], done["deploy"]
    L = [f"# agn pipeline report: {cfg.train.model} on {cfg.train.dataset}", "",
         f"Catalog `{cfg.catalog}`, seed {cfg.seed}, lambda {cfg.train.noise.lam}; energies are "
         f"relative multiplication energy with power from {pareto['power_source']}.", "",
         "## Accuracy through the stages", "",
         "| stage | test accuracy |", "|---|---|"]
    for st, what in (("float", "float model"), ("qat", "8-bit fake-quant model"),
                     ("noise", "after noise training, noise off"),
                     ("retrain", "retrained with the chosen multipliers")):
        L.append(f"| {st} ({what}) | {percent(done[st]['test_acc'])} |")
    L += [f"| retrained integer network (bit-exact, what the firmware runs) | "
          f"{percent(ex['integer_acc'])} |", "",
          f"The retrained torch model and its integer network agree on "
          f"{percent(ex['fake_quant_agreement'])} of test predictions (requantisation rounds in "
          f"integers on the device).", "",
          "## Learned noise tolerance", "", "![sigmas](sigmas.png)", "",
          *_sigma_table(sigmas)]
    L += ["", "## Error model: tolerance against predicted error", "",
          "![tolerances](tolerances.png)", "",
          "| layer | matched multiplier | tolerance | predicted std | predicted mean | "
          "relative power |", "|---|---|---|---|---|---|"]
    L += [f"| {a.name} | `{describe(a.spec)}` | {a.tolerance:.2f} | {a.predicted_std:.2f} | "
          f"{a.predicted_mean:.2f} | {a.relative_power:.4f} |" for a in asg.layers]
    L += ["", f"Relative multiplication energy of the matched assignment: **{asg.energy:.4f}** "
          f"({asg.power_source}).", "",
          "## NSGA-II: energy against accuracy", "", *_splits_text(s, pareto), "",
          "![pareto](pareto.png)", "", *_plot_legend(pareto), "",
          f"{s['evaluations']} candidates scored {s.get('scoring', 'bit-exact')} on the "
          f"validation split; "
          f"hypervolume {s['hypervolume']:.4f} (reference point energy 1, error 1)"
          + (f", random-init baseline {s['baseline_hypervolume']:.4f} with "
             f"{s['baseline_evaluations']} evaluations" if "baseline_hypervolume" in s else "")
          + "." + (f" On the test split: seeded front {s['test_hypervolume']:.4f}"
                   + (f", random-init front {s['baseline_test_hypervolume']:.4f}"
                      if "baseline_test_hypervolume" in s else "") + "."
                   if "test_hypervolume" in s else ""), ""]
    L += _front_table(pareto)
    L += ["", f"Error-model seed point: energy {s['seed_energy']:.4f}, validation accuracy "
          f"{percent(s['seed_accuracy'])}"
          + (f", test accuracy {percent(s['seed_test_accuracy'])}" if "seed_test_accuracy" in s
             else "")
          + f"; exact integer network {percent(s['exact_accuracy'])} on validation"
          + (f", {percent(s['exact_test_accuracy'])} on test" if "exact_test_accuracy" in s else "")
          + ".", *_uniform_text(run, pareto), "",
          "## The chosen point, retrained", "",
          f"Rule: {pareto.get('rule', 'lowest-energy front point within max_loss of exact')} "
          f"(max_loss {100 * chosen.details['max_loss']:.1f} points; metric: "
          f"{pareto.get('metric', 'top-1 accuracy')}). Chosen: energy **{chosen.energy:.4f}**, "
          f"before retraining {percent(chosen.details['accuracy'])} on validation"
          + "".join(f", {percent(chosen.details[k + '_accuracy'])} on {k} (exact "
                    f"{percent(chosen.details['exact_' + k + '_accuracy'])})"
                    for k in ("confirm", "test") if k + "_accuracy" in chosen.details)
          + f"; after retraining the integer network reaches {percent(ex['integer_acc'])} on the "
          f"test split.", "",
          "| layer | multiplier (filters per multiplier; kernel blocks also blocks per "
          "multiplier) |", "|---|---|"]
    L += [f"| {r.name} | `{describe(r.spec)}` |" for r in chosen.layers]
    L += _retrained_text(run)
    L += ["", "## Firmware validation", "",
          f"Generated PULP firmware in `firmware/`, compiled for the host and run on "
          f"{dep['inputs']} test inputs: **{validation['mismatches']} mismatches** against the "
          f"NumPy reference over every layer (`validation.json`).", ""]
    from agn.operating_points.report import report_section

    L += report_section(run)
    return atomic_write_text(run / "report.md", "\n".join(L) + "\n")
