"""The pipeline's stages, each a function of the shared Context writing its artifacts."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import deploy
import errormodels as em
import hwlib
from agn.export import export
from agn.intsim import IntegerScorer, predict, run_integer
from agn.pipeline.context import Context
from agn.pipeline.runner import Stage
from agn.run import BASELINE_DIR, BEST_FILE, CHOSEN_FILE, SEARCH_DIR, SEEDS_FILE, write_run_stats
from agn.search import (
    Point,
    Scored,
    SearchConfig,
    SearchSpace,
    plot_front,
    run_search,
    uniform_genes,
    write_front,
)
from agn.search.groups import GroupedSpace
from agn.search.nsga import STATE_FILE, STORE_FILE
from agn.search.retraining import RetrainingScorer
from agn.training import run_stage
from errormodels.channels import match_filters, sensitivity_order
from hwlib.fileio import atomic_write_json


def _train(stage: str):
    def run(ctx: Context) -> dict:
        assignment = str(ctx.run_dir / CHOSEN_FILE) if stage == "retrain" else None
        res = run_stage(stage, ctx.run_dir, ctx.train_config(assignment))
        return {"test_acc": res.test_acc, "val_acc": res.val_acc, "epochs": res.epochs}
    return run


def _stats(ctx: Context) -> dict:
    match = ctx.cfg.match
    write_run_stats(ctx.run_dir, ctx.train_config(), ctx.dm, samples=match.stats_samples,
                    n_fields=match.n_fields, seed=ctx.cfg.seed)
    return {"samples": match.stats_samples, "fields": match.n_fields}


def _match(ctx: Context) -> dict:
    sigmas = em.read_sigmas(ctx.run_dir / em.SIGMAS_FILE)
    stats = em.load_stats(ctx.run_dir / em.STATS_FILE)
    catalog = em.ErrorCatalog.build(ctx.cfg.catalog)
    ordered = [st for _, st in em.pair_with_stats(sigmas, stats)]
    pred = em.predict(ordered, catalog)
    comp = ctx.cfg.match.compensate
    asg = em.match(sigmas, stats, catalog, prediction=pred, compensate=comp)
    em.write_assignment(ctx.run_dir / em.ASSIGNMENT_FILE, asg)
    seeds = []
    for s in {str(s): s for s in ctx.cfg.match.scales}.values():  # one seed per distinct scale
        scaled = [dataclasses.replace(sg, sigma=sg.sigma * s) for sg in sigmas]
        seeds.append(dataclasses.replace(
            em.match(scaled, stats, catalog, prediction=pred, compensate=comp),
            details={"sigma_scale": s}))
    hwlib.write_assignments(ctx.run_dir / SEEDS_FILE, seeds)
    return {"energy": asg.energy, "power_source": asg.power_source, "assignment": asg.specs()}


def _export_search(ctx: Context) -> dict:
    """The noise-trained model as an integer network: what the search scores candidates on."""
    model = ctx.model("noise")
    net = export(model, ctx.input_shape, name=f"{ctx.cfg.train.model}_search", mean=ctx.dm.mean,
                 std=ctx.dm.std)
    deploy.save(net, ctx.run_dir / SEARCH_DIR)
    return _check_integer(ctx, model, net, "val")


def _check_integer(ctx: Context, model, net: deploy.Network, split: str) -> dict:
    """Bit-exact check of the torch engine against the NumPy reference, plus accuracies."""
    x, y = ctx.integer_split(model, split)
    probe = x[: min(16, len(x))]
    ref = deploy.run(net, probe)
    fast = run_integer(net, probe, keep=True)
    mismatched = [n for n in ref if not np.array_equal(ref[n].astype(np.int64),
                                                       fast[n].numpy())]
    if mismatched:
        raise RuntimeError(f"torch engine and NumPy reference disagree on {mismatched}")
    int_pred = predict(net, x)
    with torch.no_grad():
        fq_pred = torch.cat([model(ctx.dm.normalize(xb)).argmax(1) for xb in
                             torch.split(ctx.dm.split(split).tensors[0], 512)]).numpy()
    return {"integer_acc": float(np.mean(int_pred == y)),
            "fake_quant_agreement": float(np.mean(int_pred == fq_pred)),
            "bit_exact_nodes": len(ref), "split": split}


def search_stage(ctx: Context) -> dict:
    cfg = ctx.cfg
    net = ctx.search_network()
    scorer, scoring = _scorer(ctx, net)
    sig = {s.name: s for s in em.read_sigmas(ctx.run_dir / em.SIGMAS_FILE)}
    layers = [layer.name for layer in net.layers]
    mults = [sig[n].multiplications for n in layers]
    matched = em.read_assignment(ctx.run_dir / em.ASSIGNMENT_FILE)
    seeds_file = ctx.run_dir / SEEDS_FILE  # the pipeline's match stage writes it, agn match not
    extra = hwlib.read_assignments(seeds_file) if seeds_file.exists() else []
    space: SearchSpace
    if cfg.search.granularity == "filter":
        space, filter_seed = grouped_space(ctx, layers, mults)
        extra = [filter_seed, *extra]
    else:
        space = SearchSpace.for_init(layers, mults, cfg.catalog, cfg.search.init)
    exact = space.uniform(space.exact_gene)
    seeds = [space.encode(matched)] + [space.encode(a) for a in extra] + [exact]
    search_cfg = SearchConfig(pop_size=cfg.search.pop_size, n_gen=cfg.search.n_gen, seed=cfg.seed,
                              init=cfg.search.init, scoring=scoring)
    with ctx.runner() as runner:
        result = run_search(space, scorer, search_cfg, ctx.run_dir / SEARCH_DIR, seeds=seeds,
                            runner=runner, progress=ctx.progress)
        cache = _cache_figures(scorer, runner)
        baseline = base_cache = None
        if cfg.search.baseline:
            base_cfg = dataclasses.replace(search_cfg, init="random")
            base_space = space if isinstance(space, GroupedSpace) else \
                SearchSpace.for_init(layers, mults, cfg.catalog, "random")
            baseline = run_search(base_space, scorer, base_cfg, ctx.run_dir / BASELINE_DIR,
                                  runner=runner, progress=ctx.progress)
            base_cache = _cache_figures(scorer, runner)
            write_front(baseline, ctx.run_dir / BASELINE_DIR)
    def point(label: str, genome: np.ndarray) -> Point:
        """A labelled genome with its error (from the search's store, else scored now)."""
        key = tuple(int(v) for v in genome)
        err = result.store[key].error if key in result.store else scorer(space.decode(genome))
        return Point(label, key, space.energy(genome), err)

    points = [point(f"uniform {space.candidates[g]}", space.uniform(g))
              for g in uniform_genes(space, cfg.search.uniform_points)]
    points.append(point("error-model assignment", seeds[0]))
    exact_point = point("exact", exact)
    if exact_point.genome not in result.store:  # the exact network is always a candidate
        result.store.add(Scored(exact_point.genome, exact_point.energy, exact_point.error, 0))
    records = write_front(result, ctx.run_dir)
    plot_front(ctx.run_dir / "pareto.png", result, points, baseline,
               title=f"{cfg.train.model} on {cfg.train.dataset}: NSGA-II front "
                     f"({len(result.store)} evaluations)")
    chosen = choose_point(records, exact_point.error, cfg.search.max_loss)
    hwlib.write_assignment(ctx.run_dir / CHOSEN_FILE, space.assignment(
        chosen["genome"], rule="nsga2: lowest energy within max_loss of exact", details={
            "accuracy": chosen["accuracy"], "genome": chosen["genome"],
            "exact_accuracy": 1.0 - exact_point.error, "max_loss": cfg.search.max_loss}))
    atomic_write_json(ctx.run_dir / SEARCH_DIR / "points.json",
                      [dataclasses.asdict(p) for p in points])
    summary = {"evaluations": len(result.store), "scoring": scoring,
               "front_size": len(records),
               "hypervolume": result.hypervolume[-1], "chosen_energy": chosen["energy"],
               "chosen_accuracy": chosen["accuracy"], "exact_accuracy": 1.0 - exact_point.error,
               "seed_energy": points[-1].energy, "seed_accuracy": 1.0 - points[-1].error}
    if cache is not None:
        summary["prefix_cache"] = cache
    if baseline is not None:
        summary["baseline_hypervolume"] = baseline.hypervolume[-1]
        summary["baseline_evaluations"] = len(baseline.store)
        if base_cache is not None:
            summary["baseline_prefix_cache"] = base_cache
    return summary


def _cache_figures(scorer: Callable[[dict], float], runner: object) -> dict | None:
    """The prefix cache's reuse over the search just run (then its counters restart), when the
    scorer has one and scored in this process (Dask workers keep their own, not gathered)."""
    if not isinstance(scorer, IntegerScorer) or runner is not None:
        return None
    figures = scorer.cache_stats().as_dict()
    scorer.reset_cache_stats()
    return figures


def _scorer(ctx: Context, net: deploy.Network) -> tuple[Callable[[dict], float], str]:
    """The candidate score function and its label: the noise-trained integer network as it is,
    or after ``search.candidate_epochs`` of retraining per candidate."""
    cfg = ctx.cfg
    if cfg.search.candidate_epochs:
        scorer = RetrainingScorer(ctx.run_dir, ctx.train_config(), cfg.search.candidate_epochs,
                                  cfg.search.candidate_batches, cfg.search.val_samples)
        return scorer, scorer.label
    x, y = ctx.search_split(cfg.search.val_samples)
    if cfg.search.compensate:
        comp = em.Compensation.from_stats(em.load_stats(ctx.run_dir / em.STATS_FILE))
        return (IntegerScorer(net, x, y, compensation=comp),
                f"{SearchConfig.scoring}, error-mean compensated")
    return IntegerScorer(net, x, y), SearchConfig.scoring


def grouped_space(ctx: Context, layers: list[str],
                   mults: list[int]) -> tuple[GroupedSpace, hwlib.Assignment]:
    """The filter-granularity space (groups ranked by the error model's per-channel
    sensitivity) and the error model's filter-matched seed."""
    group = ctx.cfg.search.group
    sigmas = em.read_sigmas(ctx.run_dir / em.SIGMAS_FILE)
    stats = {st.name: st for st in em.load_stats(ctx.run_dir / em.STATS_FILE)}
    catalog = em.ErrorCatalog.build(ctx.cfg.catalog)
    order = [sensitivity_order(stats[n], catalog, group) for n in layers]
    space = GroupedSpace.build_grouped(layers, mults, ctx.cfg.catalog, order, group)
    return space, match_filters(sigmas, list(stats.values()), catalog, group=group)


def choose_point(front: list[dict], exact_error: float, max_loss: float) -> dict:
    """The lowest-energy front point losing at most ``max_loss`` accuracy against exact."""
    ok = [p for p in front if p["error"] <= exact_error + max_loss + 1e-12]
    if not ok:
        raise ValueError(f"no front point within {max_loss} of the exact accuracy "
                         f"{1 - exact_error:.4f}; the front holds {len(front)} points")
    return min(ok, key=lambda p: (p["energy"], p["error"]))


def _export_final(ctx: Context) -> dict:
    model = ctx.model("retrain")
    net = export(model, ctx.input_shape, name=ctx.cfg.train.model, mean=ctx.dm.mean, std=ctx.dm.std)
    deploy.save(net, ctx.run_dir)
    summary = _check_integer(ctx, model, net, "test")
    chosen = hwlib.read_assignment(ctx.run_dir / CHOSEN_FILE)
    summary["assignment_matches_chosen"] = net.multipliers() == chosen.specs()
    if not summary["assignment_matches_chosen"]:
        raise RuntimeError("the exported network does not carry the chosen assignment")
    return summary


def _deploy(ctx: Context) -> dict:
    net = deploy.load(ctx.run_dir)
    model = ctx.model("retrain")
    x, _ = ctx.integer_split(model, "test", ctx.cfg.deploy_inputs)
    report = deploy.validate(net, x, ctx.run_dir)
    if report.mismatches:
        raise RuntimeError(f"firmware disagrees with the NumPy reference: {report.mismatches} "
                           f"mismatching values (see {ctx.run_dir / 'validation.json'})")
    return {"mismatches": report.mismatches, "inputs": len(x)}


def _report(ctx: Context) -> dict:
    from agn.pipeline.report import write_report

    path = write_report(ctx.run_dir)
    return {"report": str(Path(path).name)}


def _training(name: str, *outputs: str) -> Stage:
    """A training stage: its result, checkpoint and ``outputs``; when they do not verify it
    trains again from the previous stage (its result and checkpoint removed)."""
    own = (f"{name}/result.json", f"{name}/last.ckpt",
           *((f"{name}/{BEST_FILE}",) if name == "float" else ()))
    return Stage(name, (*own, *outputs), _train(name), invalidate=own)


STAGES: tuple[Stage, ...] = (
    _training("float"),
    _training("qat"),
    _training("noise", "sigmas.json"),
    Stage("stats", ("operand_stats.npz",), _stats),
    Stage("match", ("assignment.json", SEEDS_FILE), _match),
    Stage("export_search", (f"{SEARCH_DIR}/network.json", f"{SEARCH_DIR}/network.npz"),
          _export_search),
    Stage("search", ("pareto.csv", "pareto.json", "pareto.png", CHOSEN_FILE,
                     f"{SEARCH_DIR}/{STORE_FILE}", f"{SEARCH_DIR}/{STATE_FILE}"), search_stage),
    _training("retrain"),
    Stage("export", ("network.json", "network.npz"), _export_final),
    Stage("deploy", ("firmware", "validation.json"), _deploy),
    Stage("report", ("report.md",), _report),
)
