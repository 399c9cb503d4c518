"""A whole NSGA-II search's candidate scoring / the exact float forward of the same network.

Builds (or reuses) a run directory up to its ``export_search`` stage (default: the default
configuration, LeNet-5 on sklearn digits), then runs the search stage's NSGA-II over the exported
integer network, scoring every candidate bit-exactly on the same validation images as the search
stage does, twice in this process: with the prefix activation cache (as the search stage
scores) and without it, each from a cold engine cache. After every scored candidate one exact
float forward of the float-trained network over the same images is timed (interleaved). Prints
the median cost of one scored candidate over the search as a multiple of that float forward
(and the whole search's total, kernel preparation included), the cache's hit rate, whether both
searches found the same errors and front, and writes a JSON.

    python bench/search_scoring.py [--run-dir R] [--pop 40] [--gen 15] [--val 0] [--threads 1]
        [--cache-mb 1024] [--clock wall|cpu] [--scoring run|plain] [--json search_scoring.json]

``--scoring run`` (default) scores as the run's search stage does (error-mean compensated and
activations rounded when its ``search`` settings say so, as they do by default); ``plain``
scores the network as exported, without either.

``--clock cpu`` times both sides by this thread's CPU time instead of wall time: on a machine
loaded by other processes, their time slices then do not land in either side's figure.

``--run-dir`` of an MNIST run (``configs/marlin_mnist.yaml``) times that network instead.
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import deploy
import errormodels as em
import hwlib
from agn import sim
from agn.intsim import IntegerScorer
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.run import SEARCH_DIR, SEEDS_FILE, pipeline_config
from agn.search import SearchConfig, SearchSpace, run_search
from hwlib.fileio import atomic_write_json


def _context(run_dir: Path | None, threads: int) -> Context:
    """A run directory finished up to export_search (built with the default configuration)."""
    from agn.config import PipelineConfig, document, load_pipeline_config

    if run_dir is None:
        run_dir = Path(tempfile.gettempdir()) / "agn_bench_search_scoring"
        run_pipeline(run_dir, PipelineConfig(), progress=False, threads=threads,
                     until="export_search", log=lambda _: None)
    cfg = load_pipeline_config([document(pipeline_config(run_dir))])
    return Context(run_dir, cfg, False, None, None, threads)


def main(argv: list[str] | None = None) -> int:
    """Time the search's scoring against the float forward; 0 when both scorers agree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, help="a run finished up to export_search "
                    "(default: build the default digits/LeNet-5 run in the temp directory)")
    ap.add_argument("--pop", type=int, help="NSGA-II population (default: the run's)")
    ap.add_argument("--gen", type=int, help="NSGA-II generations (default: the run's)")
    ap.add_argument("--val", type=int, help="validation images per candidate (default: the "
                    "run's search.val_samples, 0 = all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--cache-mb", type=float, default=1024, help="prefix cache budget (MiB)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or this thread's CPU time (robust to other load)")
    ap.add_argument("--scoring", choices=("run", "plain"), default="run",
                    help="score as the run's search does (compensation, rounding) or plain")
    ap.add_argument("--json", type=Path, default=Path("search_scoring.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time

    ctx = _context(args.run_dir, args.threads)
    cfg = ctx.cfg
    net = deploy.load(ctx.run_dir / SEARCH_DIR)
    val = cfg.search.val_samples if args.val is None else args.val
    x, y = ctx.integer_split(ctx.model("noise"), "val", val)
    xf = ctx.dm.normalize(ctx.dm.split("val").tensors[0][:len(x)])
    exact = ctx.model("float")
    as_run = args.scoring == "run"
    comp = (em.Compensation.from_stats(em.load_stats(ctx.run_dir / em.STATS_FILE))
            if as_run and cfg.search.compensate else None)
    rounding = as_run and cfg.search.round_operands
    cached = IntegerScorer(net, x, y, compensation=comp, rounding=rounding,
                           cache_bytes=int(args.cache_mb * (1 << 20)))
    plain = IntegerScorer(net, x, y, compensation=comp, rounding=rounding, cache_bytes=0)

    sig = {s.name: s for s in em.read_sigmas(ctx.run_dir / em.SIGMAS_FILE)}
    layers = [layer.name for layer in net.layers]
    space = SearchSpace.for_init(layers, [sig[n].multiplications for n in layers], cfg.catalog,
                                 cfg.search.init)
    seeds = [space.encode(em.read_assignment(ctx.run_dir / em.ASSIGNMENT_FILE))]
    seeds += [space.encode(a) for a in hwlib.read_assignments(ctx.run_dir / SEEDS_FILE)]
    seeds.append(space.uniform(space.exact_gene))
    scfg = SearchConfig(pop_size=args.pop or cfg.search.pop_size,
                        n_gen=args.gen or cfg.search.n_gen, seed=cfg.seed, init=cfg.search.init)

    def float_forward() -> float:
        t0 = clock()
        with torch.no_grad():
            exact(xf)
        return clock() - t0

    def timed_search(scorer: IntegerScorer) -> tuple[np.ndarray, dict, list]:
        """(candidate, float forward) seconds per candidate, errors by genome, and the front of
        a search scored by ``scorer``, from a cold engine cache (it pays every layer's kernel
        preparation; the multipliers themselves are built beforehand)."""
        rows: list[tuple[float, float]] = []

        def score(assignment) -> float:
            t0 = clock()
            err = scorer(assignment)
            rows.append((clock() - t0, float_forward()))
            return err

        sim.clear_cache()
        result = run_search(space, score, scfg, progress=False)
        errors = {s.genome: s.error for s in result.store.items()}
        return np.array(rows), errors, result.front()

    float_forward()  # warm-up: the first call pays one-time setup
    w0 = torch.tensor(net.layers[0].weight)
    for spec in space.candidates:  # build each multiplier and its factors once, for both runs
        sim.describe(spec, w0)
    runs = {"cached": timed_search(cached), "uncached": timed_search(plain)}
    stats = cached.cache_stats()
    same = (runs["cached"][1] == runs["uncached"][1]) and (runs["cached"][2] == runs["uncached"][2])
    a = runs["cached"][0]
    out = {
        "run_dir": str(ctx.run_dir), "model": cfg.train.model, "data": cfg.train.data,
        "images": len(x), "candidates": len(a), "pop_size": scfg.pop_size,
        "n_gen": scfg.n_gen, "threads": args.threads, "clock": args.clock,
        "compensated": comp is not None, "rounded": rounding,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "median_float_forward_s": float(np.median(a[:, 1])),
        "cache": stats.as_dict(), "identical_errors_and_front": same,
        "front_size": len(runs["cached"][2]),
    }
    for label, (rows, _, _) in runs.items():
        out[f"median_ratio_{label}"] = float(np.median(rows[:, 0] / rows[:, 1]))
        out[f"total_ratio_{label}"] = float(rows[:, 0].sum() / rows[:, 1].sum())
        out[f"median_candidate_s_{label}"] = float(np.median(rows[:, 0]))
    print(f"{out['model']} on {out['data']}: {out['candidates']} candidates scored on "
          f"{out['images']} images (pop {scfg.pop_size}, {scfg.n_gen} generations), "
          f"{args.threads} thread(s), torch {torch.__version__}, {args.clock} clock, "
          f"compensated {comp is not None}, rounded {rounding}")
    print(f"  exact float forward: median {1e3 * out['median_float_forward_s']:.2f} ms")
    for label in runs:
        print(f"  scored candidate, {label:<8}: median "
              f"{1e3 * out[f'median_candidate_s_{label}']:.2f} ms = "
              f"{out[f'median_ratio_{label}']:.2f}x the float forward (whole search, kernel "
              f"preparation included: {out[f'total_ratio_{label}']:.2f}x)")
    print(f"  prefix cache: {stats.layers_reused}/{stats.layers_run} layer evaluations reused "
          f"(hit rate {stats.hit_rate:.3f}), {stats.bytes_held / 2**20:.1f} MiB held")
    print(f"  same errors and front with and without the cache: {same}")
    atomic_write_json(args.json, out)
    print(f"  written {args.json}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
