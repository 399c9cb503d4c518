"""Layer, filter and kernel granularity on ResNet-8 / Fashion-MNIST, with ROUP and MARLIN's levels.

For each catalog, trains ResNet-8 through the pipeline stages up to the integer export
(float, QAT, noise, operand statistics and block operands, error-model matching; a run directory
is reused), then runs NSGA-II three times with the same population and generations on the
validation split: one gene per layer (layer granularity); three genes per layer over
output-channel groups ranked by the error model's per-channel sensitivity (filter granularity);
three genes per layer over (output group, input group) blocks ranked by the per-block error
model (kernel granularity, ``agn.search.groups.GroupedSpace`` with ``in_group``); each seeded by
the error model (layer-wise matches, plus the filter or kernel match). The fronts are cut at the
same number of evaluations, their points re-scored on the held-out test split, and the bench
prints each front and the lowest energy whose test accuracy stays within 1 pp and 0.3 pp of the
exact integer network's test accuracy.

MAx-DNN (Leon et al., LASCAS 2022) reports up to 54 % energy gain for up to 4 % accuracy loss
on CIFAR-10 with ROUP at layer, filter and kernel granularity.

    python bench/granularity_resnet8.py --data-dir /path/to/fashion-mnist --run-dir runs/gran
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import deploy
import errormodels as em
import hwlib
from agn.config import load_pipeline_config
from agn.intsim import IntegerScorer
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.pipeline.stages import grouped_space
from agn.search import SearchConfig, SearchSpace, pareto_indices, run_search
from agn.search.nsga import SearchResult

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "resnet8_fashion_mnist.yaml"
LOSSES = (0.01, 0.003)


def energy_within(front: list[tuple[float, float]], exact_error: float, loss: float) -> float:
    """Lowest front energy whose error is within ``loss`` of the exact network's (1.0: none)."""
    ok = [e for e, err in front if err <= exact_error + loss + 1e-12]
    return min(ok) if ok else 1.0


def front_at(result: SearchResult, budget: int) -> list[tuple[tuple[int, ...], float, float]]:
    """(genome, energy, validation error) of the Pareto front of the first ``budget``
    evaluations, by energy."""
    F = result.store.objectives()[:budget]
    genomes = result.store.genomes()[:budget]
    return sorted(((tuple(genomes[i]), float(F[i, 0]), float(F[i, 1]))
                   for i in pareto_indices(F)), key=lambda t: (t[1], t[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="directory of the Fashion-MNIST IDX files")
    ap.add_argument("--run-dir", default="runs/bench_granularity")
    ap.add_argument("--catalogs", nargs="+", default=["roup:*", "marlin:*"])
    ap.add_argument("--epochs", type=int, nargs=4, metavar=("FLOAT", "QAT", "NOISE", "RETRAIN"),
                    help="epochs per training stage (default: the config's)")
    ap.add_argument("--train-batches", type=int, default=0,
                    help="training batches per epoch (0 = all)")
    ap.add_argument("--pop", type=int, default=40)
    ap.add_argument("--gen", type=int, default=15)
    ap.add_argument("--group", type=int, default=2,
                    help="output channels per group (dividing every layer's; 10 classes)")
    ap.add_argument("--in-group", type=int, default=4,
                    help="input channels per kernel block (capped at a layer's input channels)")
    ap.add_argument("--granularities", nargs="+", default=["layer", "filter", "kernel"],
                    choices=["layer", "filter", "kernel"])
    ap.add_argument("--val", type=int, default=2000,
                    help="the run's search.val_samples (validation images per candidate)")
    ap.add_argument("--search-val", type=int, default=0,
                    help="validation images the bench's searches score on (default: --val)")
    ap.add_argument("--test", type=int, default=0, help="test images (0 = the whole split)")
    ap.add_argument("--cache-mb", type=int, default=256,
                    help="prefix activations the search's scorer keeps, MiB (results unchanged)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    for catalog in args.catalogs:
        over: dict = {"train": {"seed": args.seed, "catalog": catalog,
                                "data_args": {"root": args.data_dir}},
                      "search": {"val_samples": args.val}}
        if args.train_batches:
            over["train"]["limit_train_batches"] = args.train_batches
        if args.epochs:
            from agn.config import deep_merge, epochs_data

            over = deep_merge(over, epochs_data(args.epochs))
        cfg = load_pipeline_config([CONFIG], over)
        run = Path(args.run_dir) / catalog.split(":")[0]
        run_pipeline(run, cfg, threads=args.threads, until="export_search")
        net = deploy.load(run / "search")
        layers = [layer.name for layer in net.layers]
        sig = {s.name: s.multiplications for s in em.read_sigmas(run / em.SIGMAS_FILE)}
        mults = [sig[n] for n in layers]
        matched = em.read_assignment(run / em.ASSIGNMENT_FILE)
        extra = hwlib.read_assignments(run / "search" / "seeds.json")
        scfg = SearchConfig(pop_size=args.pop, n_gen=args.gen, seed=args.seed)
        flat = SearchSpace.build(layers, mults, catalog)
        spaces = {"layer": (flat, [matched, *extra])}
        for label in ("filter", "kernel"):
            gcfg = dataclasses.replace(cfg, search=dataclasses.replace(
                cfg.search, granularity=label, group=args.group, in_group=args.in_group))
            ctx = Context(run, gcfg, progress=True, threads=args.threads)
            space, seed = grouped_space(ctx, layers, mults)
            spaces[label] = (space, [matched, seed, *extra])
        model = ctx.model("noise")
        xv, yv = ctx.integer_split(model, "val", args.search_val or args.val)
        xt, yt = ctx.integer_split(model, "test", args.test)
        scorer = IntegerScorer(net, xv, yv, cache_bytes=args.cache_mb << 20)
        test_scorer = IntegerScorer(net, xt, yt, cache_bytes=0)  # front points: no reuse
        results = {}
        for label in args.granularities:
            space, seeds = spaces[label]
            genomes = [space.encode(a) for a in seeds] + [space.uniform(space.exact_gene)]
            results[label] = run_search(space, scorer, scfg, run / f"bench_{label}",
                                        seeds=genomes)
        exact = flat.decode(flat.uniform(flat.exact_gene))
        exact_val, exact_test = scorer(exact), test_scorer(exact)
        budget = min(len(r.store) for r in results.values())
        print(f"\n{catalog}: ResNet-8 / Fashion-MNIST, seed {args.seed}, searched on {len(yv)} "
              f"validation images, fronts re-scored on {len(yt)} test images; exact integer "
              f"accuracy {100 * (1 - exact_val):.2f} % validation, {100 * (1 - exact_test):.2f} "
              f"% test; fronts after {budget} evaluations each (pop {args.pop}, gen {args.gen}, "
              f"group {args.group}, in-group {args.in_group}; power: {flat.power_source})")
        for label, result in results.items():
            space = spaces[label][0]
            front = [(e, err, test_scorer(space.decode(g)))
                     for g, e, err in front_at(result, budget)]
            cuts = ", ".join(f"{100 * loss:g} pp: "
                             f"{energy_within([(e, t) for e, _, t in front], exact_test, loss):.4f}"
                             for loss in LOSSES)
            print(f"  {label:<7} test energy within {cuts} ({len(front)} front points)")
            for e, err, terr in front:
                print(f"    {e:.4f}  val {100 * (1 - err):6.2f} %  test {100 * (1 - terr):6.2f} %")


if __name__ == "__main__":
    main()
