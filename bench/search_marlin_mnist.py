"""MARLIN's protocol on the MARLIN MNIST network (or another shipped network, ``--config``):
seeded NSGA-II against uniform MARLIN levels and against random-init NSGA-II, every point's
accuracy measured on data the search never saw (a confirmation split, then test).

Trains the network through the pipeline stages (float, QAT, noise, operand statistics,
error-model matching, integer export; epochs, training images and the confirmation split set
here), then, with the classifier exact and no retraining (one gene per conv layer, MARLIN's
operators: single-point crossover 0.8, polynomial mutation 0.8 eta 3), optionally scoring every
candidate with error-mean compensation (``--compensate``):

* for each search seed, NSGA-II seeded with the error-model assignments (genes in power order;
  with ``--seed-uniform`` the uniform levels too) and MARLIN's random-init protocol (raw levels
  0..255), with the same population and generations: hypervolume against evaluations, at equal
  budget, and the evaluations the seeded search needs to reach the random search's final
  hypervolume;
* the seeded front (first seed) and uniform assignments (every conv on one level) on the
  validation, confirmation and test splits: which uniform points the seeded front dominates;
* with retraining (``--retrain-points``): front points and the dearest uniform levels at or
  below ``--max-energy`` retrained for one short epoch each, the cheapest within
  ``--retrain-loss`` of the exact integer network on the confirmation split chosen, its test
  accuracy reported;
* MARLIN's published MNIST points for comparison (0.910 -> 98.7 %, 0.851 -> 98.1 %,
  0.825 -> 97.1 %).

Writes ``<run-dir>/bench_marlin_mnist.json`` (``bench_marlin_mnist_u.json`` with
``--seed-uniform``) and prints it.

    python bench/search_marlin_mnist.py --data-dir DATA --run-dir runs/bench_marlin_mnist
    python bench/search_marlin_mnist.py --data-dir DATA --config resnet20_cifar10 \
        --dataset fashion-mnist --run-dir runs/bench_resnet20_fmnist --retrain-points 0
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from benchdata import add_data_dir, command_line, dataset_dir, first_reaching, write_results

import deploy
import errormodels as em
import hwlib
from agn.config import epochs_data, load_pipeline_config
from agn.config.schema import deep_merge
from agn.intsim import IntegerScorer
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.pipeline.holdout import dominated_share
from agn.pipeline.retrain_front import spread
from agn.search import SearchConfig, SearchSpace, hypervolume, pareto_indices, run_search
from agn.search.nsga import SearchResult
from agn.search.retraining import RetrainingScorer

MARLIN_FRONT = [(0.910, 0.987), (0.851, 0.981), (0.825, 0.971)]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def hv_curve(objectives: np.ndarray, step: int) -> list[tuple[int, float]]:
    """(evaluations, hypervolume of the first that many evaluations) every ``step``."""
    out = []
    for k in [*range(step, len(objectives), step), len(objectives)]:
        F = objectives[:k]
        out.append((k, hypervolume(F[pareto_indices(F)])))
    return out


def compare_searches(seeded: SearchResult, rand: SearchResult, pop: int) -> dict:
    """Hypervolume of the seeded and the random-init search at equal evaluations, and the
    evaluations the seeded search needs to reach the random search's final hypervolume."""
    cs = hv_curve(seeded.store.objectives(), pop)
    cr = hv_curve(rand.store.objectives(), pop)
    budget = min(len(seeded.store), len(rand.store))
    fs, fr = seeded.store.objectives()[:budget], rand.store.objectives()[:budget]
    every_s = [hypervolume(fs[:k][pareto_indices(fs[:k])]) for k in range(1, budget + 1)]
    reach = first_reaching(every_s, cr[-1][1])
    return {"evaluations": {"seeded": len(seeded.store), "random": len(rand.store)},
            "equal_budget": budget,
            "hypervolume_at_equal_budget": {"seeded": hypervolume(fs[pareto_indices(fs)]),
                                            "random": hypervolume(fr[pareto_indices(fr)])},
            "seeded_evaluations_to_reach_random_final": reach,
            "share_of_random_budget": None if reach is None else reach / len(rand.store),
            "curve_seeded": cs, "curve_random": cr}


def uniform_dominance(front: list[dict], uniform: list[dict], split: str) -> dict:
    """Which uniform points the front weakly dominates on ``split``; for the others, the
    accuracy the best front point at or below their energy lacks."""
    key = f"{split}_accuracy"
    pts = [(p["energy"], p[key]) for p in front]
    dominated, short = [], {}
    for u in uniform:
        if dominated_share(pts, [(u["energy"], u[key])]) == 1.0:
            dominated.append(u["level"])
        else:
            best = max((a for e, a in pts if e <= u["energy"] + 1e-12), default=None)
            short[u["level"]] = None if best is None else u[key] - best
    return {"levels": dominated, "share": len(dominated) / len(uniform),
            "not_dominated_accuracy_short": short}


def retrain_low_energy(scorer: RetrainingScorer, front: list[dict], uniform: list[dict],
                       uniform_asg: dict[int, dict[str, str]], exact: dict[str, float],
                       max_energy: float, count: int, loss: float) -> dict:
    """Retrain up to ``count`` front points and the two dearest uniform levels at or below
    ``max_energy`` (one epoch each); choose the cheapest within ``loss`` of the exact integer
    network on the confirmation split and report its test accuracy."""
    low = [p for p in front if p["energy"] <= max_energy + 1e-12]
    pool = [("front", p["energy"], p["assignment"]) for p in spread(low, count)]
    dear = sorted((u for u in uniform if u["energy"] <= max_energy + 1e-12),
                  key=lambda u: -u["energy"])[:2]
    pool += [(f"uniform marlin:{u['level']}", u["energy"], uniform_asg[u["level"]])
             for u in dear]
    points = []
    for label, e, asg in pool:
        errors = scorer.errors(asg, ("val", "confirm", "test"))
        points.append({"label": label, "energy": e, "assignment": asg,
                       "after": {k: 1 - v for k, v in errors.items()}})
        print(json.dumps({k: points[-1][k] for k in ("label", "energy", "after")}), flush=True)
    ok = [p for p in points if p["after"]["confirm"] >= exact["confirm"] - loss - 1e-12]
    chosen = min(ok, key=lambda p: p["energy"]) if ok else None
    return {"label": scorer.label, "max_energy": max_energy, "confirm_loss": loss,
            "points": points, "chosen": chosen,
            "chosen_test_loss_pp": None if chosen is None
            else 100 * (exact["test"] - chosen["after"]["test"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_dir(ap)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/bench_marlin_mnist"))
    ap.add_argument("--config", default="marlin_mnist",
                    help="shipped configuration of the network (e.g. resnet20_cifar10)")
    ap.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist"),
                    help="dataset the network is trained and scored on")
    ap.add_argument("--epochs", type=int, nargs=3, default=(6, 2, 2), metavar=("F", "Q", "N"),
                    help="float, QAT and noise epochs")
    ap.add_argument("--limit-train", type=int, default=20000, help="training images (0 = all)")
    ap.add_argument("--milestones", type=int, nargs="*", default=(),
                    help="float-stage epochs after which the learning rate drops")
    ap.add_argument("--confirm-fraction", type=float, default=0.05,
                    help="share of the training images held out as the confirmation split")
    ap.add_argument("--compensate", action="store_true",
                    help="error-mean compensation in matching and in every candidate's score")
    ap.add_argument("--pop", type=int, default=40)
    ap.add_argument("--gen", type=int, default=10)
    ap.add_argument("--val", type=int, default=2000, help="validation images per candidate")
    ap.add_argument("--seeds", default="0,1,2", help="search seeds")
    ap.add_argument("--level-step", type=int, default=4, help="uniform levels: every N-th")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--seed-uniform", action="store_true",
                    help="the uniform levels are seeds of the seeded search too")
    ap.add_argument("--retrain-points", type=int, default=4,
                    help="points with energy <= --max-energy retrained briefly (0 = none)")
    ap.add_argument("--retrain-batches", type=int, default=100,
                    help="training batches of each point's one-epoch retraining")
    ap.add_argument("--max-energy", type=float, default=0.70)
    ap.add_argument("--retrain-loss", type=float, default=0.003,
                    help="confirmation-split loss allowed for the retrained choice")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-only", action="store_true",
                    help="stop after training and export (a later run reuses the run directory)")
    args = ap.parse_args()

    data = deep_merge(epochs_data((*args.epochs, 1)), {"train": {
        "seed": args.seed, "progress_bar": False, "data": args.dataset,
        "float_stage": {"milestones": list(args.milestones)},
        "data_args": {"root": dataset_dir(args.data_dir, args.dataset), "download": False,
                      "limit_train": args.limit_train,
                      "confirm_fraction": args.confirm_fraction}},
        "match": {"compensate": args.compensate}})
    cfg = load_pipeline_config([CONFIGS / f"{args.config}.yaml"], data)
    run = args.run_dir
    tag = "_u" if args.seed_uniform else ""
    t0 = time.time()
    status = run_pipeline(run, cfg, threads=args.threads, until="export_search", progress=False)
    if args.train_only:
        return
    ctx = Context(run, cfg, progress=False, threads=args.threads)
    training = {k: v["test_acc"] for k, v in status.finished.items() if "test_acc" in v}

    net = deploy.load(run / "search")
    model = ctx.model("noise")
    split = {"val": ctx.integer_split(model, "val", args.val),
             "confirm": ctx.integer_split(model, "confirm"),
             "test": ctx.integer_split(model, "test")}
    classifier = net.layers[-1].name
    convs = [layer.name for layer in net.layers if layer.op == "conv"]
    sig = {s.name: s.multiplications for s in em.read_sigmas(run / em.SIGMAS_FILE)}
    counts = [sig[n] for n in convs]
    fixed = {classifier: "marlin:0"}
    comp = (em.Compensation.from_stats(em.load_stats(run / em.STATS_FILE))
            if args.compensate else None)
    scorers = {k: IntegerScorer(net, x, y, fixed=fixed, compensation=comp)
               for k, (x, y) in split.items()}

    def accuracy(asg: dict[str, str]) -> dict[str, float]:
        return {k: 1 - f(asg) for k, f in scorers.items()}

    space = SearchSpace.build(convs, counts, "marlin:*")
    levels = sorted({*range(0, 256, args.level_step), 255})
    uniform_asg = {lv: {n: f"marlin:{lv}" for n in convs} for lv in levels}
    matched = em.read_assignment(run / em.ASSIGNMENT_FILE).specs()
    extra = [a.specs() for a in hwlib.read_assignments(run / "search" / "seeds.json")]
    if args.seed_uniform:
        extra += list(uniform_asg.values())
    seeds = [space.encode({n: a[n] for n in convs}) for a in [matched, *extra]]
    raw = SearchSpace.for_init(convs, counts, "marlin:*", "random")

    searches = []
    first_front = None
    for s in [int(v) for v in args.seeds.split(",")]:
        scfg = SearchConfig(pop_size=args.pop, n_gen=args.gen, seed=s)
        seeded = run_search(space, scorers["val"], scfg, run / f"bench_seeded_{s}{tag}",
                            seeds=seeds, progress=False)
        rand = run_search(raw, scorers["val"], dataclasses.replace(scfg, init="random"),
                          run / f"bench_random_{s}", progress=False)
        searches.append(compare_searches(seeded, rand, args.pop))
        searches[-1]["seed"] = s
        first_front = first_front or seeded

    assert first_front is not None
    front = [{"energy": e, **{f"{k}_accuracy": a for k, a in accuracy(space.decode(g)).items()},
              "assignment": space.decode(g)} for g, e, _ in first_front.front()]
    uniform = [{"level": lv, "energy": space.catalog.energy(list(asg.values()), counts),
                **{f"{k}_accuracy": a for k, a in accuracy(asg).items()}}
               for lv, asg in uniform_asg.items()]
    exact = accuracy({n: "marlin:0" for n in convs})
    dominance = {k: uniform_dominance(front, uniform, k) for k in ("val", "confirm", "test")}
    test_front = [(p["energy"], p["test_accuracy"]) for p in front]
    marlin = [{"energy": me, "marlin_accuracy": ma,
               "ours_best_test_at_or_below": max((a for e, a in test_front if e <= me + 1e-9),
                                                 default=None)} for me, ma in MARLIN_FRONT]
    retrained = None
    if args.retrain_points:
        tcfg = dataclasses.replace(ctx.train_config(), compensate=args.compensate)
        rscorer = RetrainingScorer(run, tcfg, 1, args.retrain_batches, args.val, fixed=fixed)
        retrained = retrain_low_energy(rscorer, front, uniform, uniform_asg, exact,
                                       args.max_energy, args.retrain_points, args.retrain_loss)
    results = {
        "command": command_line("search_marlin_mnist.py", args),
        "seconds": round(time.time() - t0, 1), "training_test_accuracy": training,
        "power_source": space.power_source, "classifier_exact": classifier,
        "compensated": args.compensate, "splits": ctx.split_sizes(),
        "scored_images": {k: len(y) for k, (_, y) in split.items()},
        "exact_integer_accuracy": exact,
        "searches": searches, "seeded_front_seed0": front, "uniform_levels": uniform,
        "uniform_points_dominated": dominance, "marlin_published": marlin,
        "retrained": retrained}
    write_results(run / f"bench_marlin_mnist{tag}.json", results)


if __name__ == "__main__":
    main()
