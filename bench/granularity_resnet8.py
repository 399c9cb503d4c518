"""Layer against filter granularity on ResNet-8 / Fashion-MNIST, with ROUP and with MARLIN's levels.

For each catalog, trains ResNet-8 through the pipeline stages up to the integer export
(float, QAT, noise, operand statistics, error-model matching), then runs NSGA-II twice with the
same population and generations: one gene per layer (layer granularity), and three genes per
layer over output-channel groups ranked by the error model's per-channel sensitivity (filter
granularity, ``agn.search.groups.GroupedSpace``), both seeded by the error model. The fronts are
cut at the same number of evaluations; the bench prints each front and the lowest energy at
which it stays within 1 pp and 0.3 pp of the exact integer network's validation accuracy.
Kernel granularity ((output, input) blocks) is not searched: the error model has no per-block
prediction yet.

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


def front_at(result: SearchResult, budget: int) -> list[tuple[float, float]]:
    """(energy, error) of the Pareto front of the first ``budget`` evaluations."""
    F = result.store.objectives()[:budget]
    return sorted((float(e), float(err)) for e, err in F[pareto_indices(F)])


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
    ap.add_argument("--val", type=int, default=2000, help="validation images per candidate")
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
        grouped_cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search,
                                                                          group=args.group))
        ctx = Context(run, grouped_cfg, progress=True, threads=args.threads)
        net = deploy.load(run / "search")
        xv, yv = ctx.integer_split(ctx.model("noise"), "val", args.val)
        scorer = IntegerScorer(net, xv, yv)
        layers = [layer.name for layer in net.layers]
        sig = {s.name: s.multiplications for s in em.read_sigmas(run / em.SIGMAS_FILE)}
        mults = [sig[n] for n in layers]
        matched = em.read_assignment(run / em.ASSIGNMENT_FILE)
        extra = hwlib.read_assignments(run / "search" / "seeds.json")
        scfg = SearchConfig(pop_size=args.pop, n_gen=args.gen, seed=args.seed)
        flat = SearchSpace.build(layers, mults, catalog)
        grouped, filter_seed = grouped_space(ctx, layers, mults)
        results = {}
        for label, space, seeds in (("layer", flat, [matched, *extra]),
                                    ("filter", grouped, [matched, filter_seed, *extra])):
            genomes = [space.encode(a) for a in seeds] + [space.uniform(space.exact_gene)]
            results[label] = run_search(space, scorer, scfg, run / f"bench_{label}",
                                        seeds=genomes)
        exact_error = scorer(flat.decode(flat.uniform(flat.exact_gene)))
        budget = min(len(r.store) for r in results.values())
        print(f"\n{catalog}: ResNet-8 / Fashion-MNIST, exact integer validation accuracy "
              f"{100 * (1 - exact_error):.2f} %, fronts after {budget} evaluations each "
              f"(group {args.group}; power: {flat.power_source})")
        for label, result in results.items():
            front = front_at(result, budget)
            cuts = ", ".join(f"{100 * loss:g} pp: {energy_within(front, exact_error, loss):.4f}"
                             for loss in LOSSES)
            print(f"  {label:<7} energy within {cuts}")
            for e, err in front:
                print(f"    {e:.4f}  {100 * (1 - err):6.2f} %")
        print("  kernel  not searched (no per-block error model yet)")


if __name__ == "__main__":
    main()
