"""Seeded against random-init NSGA-II on the MARLIN MNIST network, against MARLIN's published front.

Trains the MARLIN MNIST network on MNIST through the pipeline stages (float, QAT, noise, operand
statistics, error-model matching, integer export), then runs NSGA-II twice with the same budget
and MARLIN's operators (one gene per conv layer, the classifier exact, population 70,
single-point crossover 0.8, polynomial mutation 0.8 eta 3, no retraining): seeded with the
error-model assignment over genes in power order, and MARLIN's own protocol, random genomes of
raw levels 0..255. Prints the hypervolume of both
after the same number of evaluations, and the test accuracy of the fronts beside MARLIN's
published points (energy 0.910 -> 98.7 %, 0.851 -> 98.1 %, 0.825 -> 97.1 %).

    python bench/search_marlin_mnist.py --data-dir data/mnist --run-dir runs/bench_mnist
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import deploy
import errormodels as em
import hwlib
from agn.config import load_pipeline_config
from agn.intsim import IntegerScorer, predict
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.search import (
    SearchConfig,
    SearchSpace,
    hypervolume,
    pareto_indices,
    plot_front,
    run_search,
)

MARLIN_FRONT = [(0.910, 0.987), (0.851, 0.981), (0.825, 0.971)]
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "marlin_mnist.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="directory of the MNIST IDX files")
    ap.add_argument("--run-dir", default="runs/bench_marlin_mnist")
    ap.add_argument("--pop", type=int, default=70)
    ap.add_argument("--gen", type=int, default=20)
    ap.add_argument("--val", type=int, default=2000, help="validation images per candidate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    cfg = load_pipeline_config([CONFIG], {"train": {"seed": args.seed,
                                                    "data_args": {"root": args.data_dir}}})
    run = Path(args.run_dir)
    status = run_pipeline(run, cfg, threads=args.threads, until="export_search")
    ctx = Context(run, cfg, progress=True, threads=args.threads)
    print("training:", {k: round(v["test_acc"], 4) for k, v in status.finished.items()
                        if "test_acc" in v})

    net = deploy.load(run / "search")
    model = ctx.model("noise")
    xv, yv = ctx.integer_split(model, "val", args.val)
    xt, yt = ctx.integer_split(model, "test")
    classifier = net.layers[-1].name
    convs = [layer.name for layer in net.layers if layer.op == "conv"]
    sig = {s.name: s.multiplications for s in em.read_sigmas(run / em.SIGMAS_FILE)}
    space = SearchSpace.build(convs, [sig[n] for n in convs], "marlin:*")
    fixed = {classifier: "marlin:0"}
    scorer = IntegerScorer(net, xv, yv, fixed=fixed)
    matched = em.read_assignment(run / em.ASSIGNMENT_FILE).specs()
    extra = [a.specs() for a in hwlib.read_assignments(run / "search" / "seeds.json")]
    seeds = [space.encode({n: a[n] for n in convs}) for a in [matched, *extra]]
    scfg = SearchConfig(pop_size=args.pop, n_gen=args.gen, seed=args.seed)
    seeded = run_search(space, scorer, scfg, run / "bench_seeded", seeds=seeds)
    raw = SearchSpace.for_init(convs, [sig[n] for n in convs], "marlin:*", "random")
    rand = run_search(raw, scorer, dataclasses.replace(scfg, init="random"),
                      run / "bench_random")

    budget = min(len(seeded.store), len(rand.store))

    def hv_at(result) -> float:
        F = result.store.objectives()[:budget]
        return hypervolume(F[pareto_indices(F)])

    print(f"\nevaluations: seeded {len(seeded.store)}, random {len(rand.store)}; hypervolume "
          f"after {budget} evaluations (reference energy 1, error 1): seeded {hv_at(seeded):.4f}"
          f", random {hv_at(rand):.4f}")
    print(f"power table: {space.power_source}; classifier {classifier} exact")
    exact_acc = float(np.mean(predict(deploy.with_multipliers(
        net, {n: "marlin:0" for n in sig}), xt) == yt))
    print(f"exact integer network test accuracy {exact_acc:.4f}\n")
    for label, result in (("seeded", seeded), ("random", rand)):
        rows = []
        for g, e, err in result.front():
            asg = {**result.space.decode(g), **fixed}
            acc = float(np.mean(predict(deploy.with_multipliers(net, asg), xt) == yt))
            rows.append((e, 1 - err, acc))
        print(f"{label} front: energy, validation acc, test acc")
        for e, va, ta in rows:
            print(f"  {e:.3f}  {100 * va:6.2f} %  {100 * ta:6.2f} %")
        for me, macc in MARLIN_FRONT:
            ok = [ta for e, _, ta in rows if e <= me + 1e-9]
            best = f"{100 * max(ok):.2f} %" if ok else "none"
            print(f"  MARLIN energy {me:.3f} -> {100 * macc:.1f} %; ours at <= {me:.3f}: {best}")
    plot_front(run / "bench_pareto.png", seeded, baseline=rand,
               title="MARLIN MNIST network on MNIST: seeded vs random-init NSGA-II")
    print(f"\nfigure: {run / 'bench_pareto.png'}")


if __name__ == "__main__":
    main()
