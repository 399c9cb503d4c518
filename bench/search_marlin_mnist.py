"""MARLIN MNIST network on MNIST: seeded NSGA-II against uniform MARLIN levels and against
random-init NSGA-II (MARLIN's protocol), every point's accuracy measured on the test split.

Trains the MARLIN MNIST network through the pipeline stages (float, QAT, noise, operand
statistics, error-model matching, integer export; epochs and training images set here), then,
with the classifier exact and no retraining (one gene per conv layer, MARLIN's operators:
single-point crossover 0.8, polynomial mutation 0.8 eta 3):

* for each search seed, NSGA-II seeded with the error-model assignments (genes in power order)
  and MARLIN's random-init protocol (raw levels 0..255), with the same population and
  generations: hypervolume against evaluations, at equal budget, and the evaluations the seeded
  search needs to reach the random search's final hypervolume;
* the seeded front (first seed) and uniform assignments (every conv on one level) on the
  10,000 test images: which uniform points the seeded front dominates on test;
* MARLIN's published points for comparison (0.910 -> 98.7 %, 0.851 -> 98.1 %, 0.825 -> 97.1 %).

Writes ``<run-dir>/bench_marlin_mnist.json`` and prints it.

    python bench/search_marlin_mnist.py --data-dir DATA --run-dir runs/bench_marlin_mnist
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from benchdata import add_data_dir, dataset_dir, first_reaching, write_results

import deploy
import errormodels as em
import hwlib
from agn.config import epochs_data, load_pipeline_config
from agn.config.schema import deep_merge
from agn.intsim import IntegerScorer
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.pipeline.holdout import dominated_share
from agn.search import SearchConfig, SearchSpace, hypervolume, pareto_indices, run_search

MARLIN_FRONT = [(0.910, 0.987), (0.851, 0.981), (0.825, 0.971)]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "marlin_mnist.yaml"


def hv_curve(objectives: np.ndarray, step: int) -> list[tuple[int, float]]:
    """(evaluations, hypervolume of the first that many evaluations) every ``step``."""
    out = []
    for k in [*range(step, len(objectives), step), len(objectives)]:
        F = objectives[:k]
        out.append((k, hypervolume(F[pareto_indices(F)])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(ap)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/bench_marlin_mnist"))
    ap.add_argument("--epochs", type=int, nargs=3, default=(6, 2, 2), metavar=("F", "Q", "N"),
                    help="float, QAT and noise epochs")
    ap.add_argument("--limit-train", type=int, default=20000, help="training images (0 = all)")
    ap.add_argument("--pop", type=int, default=40)
    ap.add_argument("--gen", type=int, default=10)
    ap.add_argument("--val", type=int, default=2000, help="validation images per candidate")
    ap.add_argument("--seeds", default="0,1,2", help="search seeds")
    ap.add_argument("--level-step", type=int, default=4, help="uniform levels: every N-th")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    data = deep_merge(epochs_data((*args.epochs, 1)), {"train": {
        "seed": args.seed, "progress_bar": False,
        "data_args": {"root": dataset_dir(args.data_dir, "mnist"), "download": False,
                      "limit_train": args.limit_train}}})
    cfg = load_pipeline_config([CONFIG], data)
    run = args.run_dir
    t0 = time.time()
    status = run_pipeline(run, cfg, threads=args.threads, until="export_search", progress=False)
    ctx = Context(run, cfg, progress=False, threads=args.threads)
    training = {k: v["test_acc"] for k, v in status.finished.items() if "test_acc" in v}

    net = deploy.load(run / "search")
    model = ctx.model("noise")
    xv, yv = ctx.integer_split(model, "val", args.val)
    xt, yt = ctx.integer_split(model, "test")
    classifier = net.layers[-1].name
    convs = [layer.name for layer in net.layers if layer.op == "conv"]
    sig = {s.name: s.multiplications for s in em.read_sigmas(run / em.SIGMAS_FILE)}
    counts = [sig[n] for n in convs]
    fixed = {classifier: "marlin:0"}
    val_scorer = IntegerScorer(net, xv, yv, fixed=fixed)
    test_scorer = IntegerScorer(net, xt, yt, fixed=fixed)
    space = SearchSpace.build(convs, counts, "marlin:*")
    matched = em.read_assignment(run / em.ASSIGNMENT_FILE).specs()
    extra = [a.specs() for a in hwlib.read_assignments(run / "search" / "seeds.json")]
    seeds = [space.encode({n: a[n] for n in convs}) for a in [matched, *extra]]
    raw = SearchSpace.for_init(convs, counts, "marlin:*", "random")

    searches = []
    first_front = None
    for s in [int(v) for v in args.seeds.split(",")]:
        scfg = SearchConfig(pop_size=args.pop, n_gen=args.gen, seed=s)
        seeded = run_search(space, val_scorer, scfg, run / f"bench_seeded_{s}", seeds=seeds,
                            progress=False)
        rand = run_search(raw, val_scorer, dataclasses.replace(scfg, init="random"),
                          run / f"bench_random_{s}", progress=False)
        cs = hv_curve(seeded.store.objectives(), args.pop)
        cr = hv_curve(rand.store.objectives(), args.pop)
        budget = min(len(seeded.store), len(rand.store))
        fs, fr = seeded.store.objectives()[:budget], rand.store.objectives()[:budget]
        every_s = [hypervolume(fs[:k][pareto_indices(fs[:k])]) for k in range(1, budget + 1)]
        reach = first_reaching(every_s, cr[-1][1])
        searches.append({
            "seed": s, "evaluations": {"seeded": len(seeded.store), "random": len(rand.store)},
            "equal_budget": budget,
            "hypervolume_at_equal_budget": {
                "seeded": hypervolume(fs[pareto_indices(fs)]),
                "random": hypervolume(fr[pareto_indices(fr)])},
            "seeded_evaluations_to_reach_random_final": reach,
            "share_of_random_budget": None if reach is None else reach / len(rand.store),
            "curve_seeded": cs, "curve_random": cr})
        first_front = first_front or seeded

    assert first_front is not None
    front = []
    for g, e, err in first_front.front():
        front.append({"energy": e, "val_accuracy": 1 - err,
                      "test_accuracy": 1 - test_scorer(space.decode(g)),
                      "assignment": space.decode(g)})
    levels = sorted({*range(0, 256, args.level_step), 255})
    uniform = []
    for lv in levels:
        asg = {n: f"marlin:{lv}" for n in convs}
        uniform.append({"level": lv, "energy": space.catalog.energy(list(asg.values()), counts),
                        "val_accuracy": 1 - val_scorer(asg),
                        "test_accuracy": 1 - test_scorer(asg)})
    test_front = [(p["energy"], p["test_accuracy"]) for p in front]
    dominated = [u["level"] for u in uniform
                 if dominated_share(test_front, [(u["energy"], u["test_accuracy"])]) == 1.0]
    exact = 1 - test_scorer({n: "marlin:0" for n in convs})
    marlin = [{"energy": me, "marlin_accuracy": ma,
               "ours_best_test_at_or_below": max((a for e, a in test_front if e <= me + 1e-9),
                                                 default=None)} for me, ma in MARLIN_FRONT]
    results = {
        "command": "python bench/search_marlin_mnist.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k not in ("data_dir", "run_dir")),
        "seconds": round(time.time() - t0, 1), "training_test_accuracy": training,
        "power_source": space.power_source, "classifier_exact": classifier,
        "exact_integer_test_accuracy": exact, "val_images": len(yv), "test_images": len(yt),
        "searches": searches, "seeded_front_seed0": front, "uniform_levels": uniform,
        "uniform_points_dominated_on_test": {"levels": dominated, "share": len(dominated) /
                                             len(uniform)},
        "marlin_published": marlin}
    write_results(run / "bench_marlin_mnist.json", results)


if __name__ == "__main__":
    main()
