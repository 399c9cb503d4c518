"""The pipeline's stages, each a function of the shared Context writing its artifacts."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import deploy
import errormodels as em
import hwlib
from agn.export import export
from agn.intsim import IntegerScorer, predict, run_integer, take_cache_stats
from agn.pipeline.context import Context
from agn.pipeline.holdout import HELDOUT, METRIC, Heldout, choose_point
from agn.pipeline.retrain_front import RETRAINED_FILE, choose_retrained, retrain_points, spread
from agn.pipeline.runner import Stage
from agn.prefix_cache import CacheStats
from agn.run import BASELINE_DIR, BEST_FILE, CHOSEN_FILE, SEARCH_DIR, SEEDS_FILE, write_run_stats
from agn.search import (
    Point,
    Scored,
    SearchConfig,
    SearchResult,
    SearchSpace,
    hypervolume,
    pareto_indices,
    plot_front,
    run_search,
    uniform_genes,
    write_front,
)
from agn.search.groups import GroupedSpace
from agn.search.nsga import STATE_FILE, STORE_FILE
from agn.search.retraining import RetrainingScorer
from agn.training import run_stage
from errormodels.blocks import (
    BLOCKS_FILE,
    kernel_sensitivity_order,
    load_block_operands,
    match_kernels,
)
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
        scaled = [sg.scaled(s) for sg in sigmas]
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
    if cfg.search.granularity in ("filter", "kernel"):
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
    held = _heldout(ctx, net)

    def point(label: str, genome: np.ndarray) -> Point:
        """A labelled genome with its error (from the search's store, else scored now) and its
        test error."""
        key = tuple(int(v) for v in genome)
        err = result.store[key].error if key in result.store else scorer(space.decode(genome))
        test = held.score(space.decode(genome), ("test",))["test"]
        return Point(label, key, space.energy(genome), err, test)

    points = [point(f"uniform {space.candidates[g]}", space.uniform(g))
              for g in uniform_genes(space, cfg.search.uniform_points)]
    points.append(point("error-model assignment", seeds[0]))
    exact_point = point("exact", exact)
    if exact_point.genome not in result.store:  # the exact network is always a candidate
        result.store.add(Scored(exact_point.genome, exact_point.energy, exact_point.error, 0))
    meta = {"splits": dict(held.sizes), "metric": METRIC, "choice_split": held.choice_split,
            "rule": held.rule(cfg.search.max_loss), "chance_accuracy": held.chance}
    records = write_front(result, ctx.run_dir, columns=_columns(result, held), meta=meta)
    exact_rec = {"genome": list(exact_point.genome), "energy": exact_point.energy,
                 "error": exact_point.error, "accuracy": 1.0 - exact_point.error,
                 **{k: v[0] for k, v in held.columns([space.decode(exact)]).items()}}
    key = "error" if held.choice_split == "val" else f"{held.choice_split}_error"
    # the exact network qualifies by definition, so a front that does not hold still yields one
    chosen = choose_point([*records, exact_rec], exact_rec[key], cfg.search.max_loss, key)
    retrained: list[dict] = []
    if cfg.search.retrain_points:
        matched_before = {"val": 1.0 - points[-1].error,
                          **{k: 1.0 - v for k, v in
                             held.score(space.decode(seeds[0]), held.splits).items()}}
        retrained = _retrain_front(ctx, space, held, records, (seeds[0], matched_before))
        pick = choose_retrained(retrained, chosen, exact_rec[key], cfg.search.max_loss,
                                held.choice_split)
        if pick["retrained"]:
            chosen = _as_record(next(r for r in retrained if r["genome"] == pick["genome"]))
    atomic_write_json(ctx.run_dir / RETRAINED_FILE, {
        "epochs": cfg.search.retrain_point_epochs, "batches": cfg.search.candidate_batches,
        "points": retrained})
    if baseline is not None:
        write_front(baseline, ctx.run_dir / BASELINE_DIR, columns=_columns(baseline, held),
                    meta=meta)
    chosen_point = Point("chosen point", tuple(chosen["genome"]), chosen["energy"],
                         chosen["error"], chosen["test_error"])
    plot_front(ctx.run_dir / "pareto.png", result, [*points, chosen_point], baseline,
               title=f"{cfg.train.model} on {cfg.train.dataset}: NSGA-II front "
                     f"({len(result.store)} evaluations)",
               heldout=[(r["energy"], r["test_accuracy"]) for r in records],
               heldout_label="front re-scored on the test split")
    details = {"accuracy": chosen["accuracy"], "genome": chosen["genome"],
               "exact_accuracy": exact_rec["accuracy"], "max_loss": cfg.search.max_loss,
               "choice_split": held.choice_split,
               **({"retrained_accuracy": chosen["retrained_accuracy"]}
                  if "retrained_accuracy" in chosen else {}),
               **{f"{s}_accuracy": chosen[f"{s}_accuracy"] for s in held.splits},
               **{f"exact_{s}_accuracy": exact_rec[f"{s}_accuracy"] for s in held.splits}}
    hwlib.write_assignment(ctx.run_dir / CHOSEN_FILE, space.assignment(
        chosen["genome"], rule=f"nsga2: {held.rule(cfg.search.max_loss)}", details=details))
    atomic_write_json(ctx.run_dir / SEARCH_DIR / "points.json",
                      [dataclasses.asdict(p) for p in points])
    summary = {"evaluations": len(result.store), "scoring": scoring,
               "front_size": len(records),
               "hypervolume": result.hypervolume[-1], "chosen_energy": chosen["energy"],
               "chosen_accuracy": chosen["accuracy"], "exact_accuracy": 1.0 - exact_point.error,
               "seed_energy": points[-1].energy, "seed_accuracy": 1.0 - points[-1].error,
               "seed_test_accuracy": 1.0 - float(points[-1].test_error or 0.0),
               "splits": dict(held.sizes), "choice_split": held.choice_split,
               "near_chance_points": sum(r["near_chance"] for r in records),
               "test_hypervolume": _hypervolume(records, "test_error"),
               "retrained_points": len(retrained),
               "chosen_retrained": "retrained_accuracy" in chosen,
               **{f"chosen_{s}_accuracy": chosen[f"{s}_accuracy"] for s in held.splits},
               **{f"exact_{s}_accuracy": exact_rec[f"{s}_accuracy"] for s in held.splits}}
    if cache is not None:
        summary["prefix_cache"] = cache
    if baseline is not None:
        summary["baseline_hypervolume"] = baseline.hypervolume[-1]
        summary["baseline_evaluations"] = len(baseline.store)
        base_records = json.loads((ctx.run_dir / BASELINE_DIR / "pareto.json").read_text())
        summary["baseline_test_hypervolume"] = _hypervolume(base_records["front"], "test_error")
        if base_cache is not None:
            summary["baseline_prefix_cache"] = base_cache
    return summary


def _retrain_front(ctx: Context, space: SearchSpace, held: Heldout, records: list[dict],
                   matched: tuple[np.ndarray, dict]) -> list[dict]:
    """``search.retrain_points`` front points below the exact energy, spread over the front,
    and the error-model assignment, each retrained ``search.retrain_point_epochs`` epochs."""
    cfg = ctx.cfg.search
    scorer = RetrainingScorer(ctx.run_dir, ctx.train_config(), cfg.retrain_point_epochs,
                              cfg.candidate_batches)
    picked = spread([r for r in records if r["energy"] < 1.0], cfg.retrain_points)
    todo = [("front point", r["genome"], {"val": r["accuracy"],
                                          **{s: r[f"{s}_accuracy"] for s in held.splits}})
            for r in picked]
    if all(list(matched[0]) != r["genome"] for r in picked):
        todo.append(("error-model assignment", [int(g) for g in matched[0]], matched[1]))
    return retrain_points(scorer, space, held, todo)


def _as_record(r: dict) -> dict:
    """A retrained point as a front record (accuracies before retraining, plus after)."""
    acc = {"accuracy": r["before"]["val"], **{f"{s}_accuracy": v for s, v in r["before"].items()
                                              if s != "val"}}
    return {"genome": r["genome"], "energy": r["energy"], "error": 1.0 - acc["accuracy"],
            **acc, **{f"{k.removesuffix('_accuracy')}_error": 1.0 - v for k, v in acc.items()
                      if k != "accuracy"}, "retrained_accuracy": r["after"]}


def _columns(result: SearchResult, held: Heldout) -> dict[str, list]:
    """The held-out columns of a search's front, and whether each point is near chance on the
    search split."""
    front = result.front()
    cols = held.columns([result.space.decode(g) for g, _, _ in front])
    cols["near_chance"] = [held.near_chance(1.0 - err) for _, _, err in front]
    return cols


def _hypervolume(records: list[dict], key: str) -> float:
    """Hypervolume of front records with their ``key`` error (their non-dominated subset)."""
    F = np.array([[r["energy"], r[key]] for r in records]).reshape(-1, 2)
    return hypervolume(F[pareto_indices(F)])


def _heldout(ctx: Context, net: deploy.Network) -> Heldout:
    """The held-out splits of the run (``confirm`` when the data holds one, ``test``) scored
    like the search scores candidates: bit-exactly, after the same retraining when the search
    retrains each candidate."""
    cfg = ctx.cfg
    data = ctx.heldout_splits(HELDOUT)
    splits = tuple(data)
    counts = ctx.split_sizes()
    n_val = counts.pop("val")
    sizes = {**counts, "search": min(n_val, cfg.search.val_samples or n_val),
             **{s: len(y) for s, (_, y) in data.items()}}
    if cfg.search.candidate_epochs:
        retrainer = RetrainingScorer(ctx.run_dir, ctx.train_config(), cfg.search.candidate_epochs,
                                     cfg.search.candidate_batches)
        return Heldout(splits=splits, score=retrainer.errors, sizes=sizes,
                       classes=ctx.num_classes)
    scorers = {s: _integer_scorer(ctx, net, x, y)[0] for s, (x, y) in data.items()}
    return Heldout(splits=splits, score=lambda a, which: {s: scorers[s](a) for s in which},
                   sizes=sizes, classes=ctx.num_classes)


def _cache_figures(scorer: Callable[[dict], float], runner: object) -> dict | None:
    """The prefix cache's reuse over the search just run (then its counters restart), when the
    scorer has one: this process's, or every Dask worker's copy added up (``workers`` of them)."""
    if not isinstance(scorer, IntegerScorer):
        return None
    if runner is None:
        return take_cache_stats(scorer).as_dict()
    each = getattr(runner, "each_worker", None)
    if each is None:
        return None
    parts = each(scorer, take_cache_stats)
    return {**CacheStats.total(parts).as_dict(), "workers": len(parts)}


def _scorer(ctx: Context, net: deploy.Network) -> tuple[Callable[[dict], float], str]:
    """The candidate score function and its label: the noise-trained integer network as it is,
    or after ``search.candidate_epochs`` of retraining per candidate."""
    cfg = ctx.cfg
    if cfg.search.candidate_epochs:
        scorer = RetrainingScorer(ctx.run_dir, ctx.train_config(), cfg.search.candidate_epochs,
                                  cfg.search.candidate_batches, cfg.search.val_samples)
        return scorer, scorer.label
    return _integer_scorer(ctx, net, *ctx.search_split(cfg.search.val_samples))


def _integer_scorer(ctx: Context, net: deploy.Network, x: np.ndarray, y: np.ndarray
                    ) -> tuple[IntegerScorer, str]:
    """The bit-exact scorer of ``net`` on ``(x, y)`` with the search's compensation and
    rounding settings, and its label."""
    cfg = ctx.cfg.search
    comp = (em.Compensation.from_stats(em.load_stats(ctx.run_dir / em.STATS_FILE))
            if cfg.compensate else None)
    label = SearchConfig.scoring + (", error-mean compensated" if cfg.compensate else "") + \
        (", activations rounded" if cfg.round_operands else "")
    return IntegerScorer(net, x, y, compensation=comp, rounding=cfg.round_operands,
                         cache_bytes=cfg.cache_bytes), label


def grouped_space(ctx: Context, layers: list[str],
                   mults: list[int]) -> tuple[GroupedSpace, hwlib.Assignment]:
    """The filter- (kernel-) granularity space, groups (blocks) ranked by the error model's
    per-channel (per-block) sensitivity, and the error model's filter- (kernel-) matched seed."""
    group, in_group = ctx.cfg.search.group, ctx.cfg.search.in_group
    sigmas = em.read_sigmas(ctx.run_dir / em.SIGMAS_FILE)
    stats = {st.name: st for st in em.load_stats(ctx.run_dir / em.STATS_FILE)}
    catalog = em.ErrorCatalog.build(ctx.cfg.catalog)
    if ctx.cfg.search.granularity == "kernel":
        ops = load_block_operands(ctx.run_dir / BLOCKS_FILE)
        missing = [n for n in layers if n not in ops]
        if missing:
            raise em.StatsError(f"{ctx.run_dir / BLOCKS_FILE}: no block operands for {missing}")
        order = [kernel_sensitivity_order(ops[n], catalog, group, in_group) for n in layers]
        space = GroupedSpace.build_grouped(layers, mults, ctx.cfg.catalog, order, group,
                                           in_group, [ops[n].in_channels for n in layers])
        return space, match_kernels(sigmas, list(stats.values()), ops, catalog, group=group,
                                    in_group=in_group)
    order = [sensitivity_order(stats[n], catalog, group) for n in layers]
    space = GroupedSpace.build_grouped(layers, mults, ctx.cfg.catalog, order, group)
    return space, match_filters(sigmas, list(stats.values()), catalog, group=group)



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
    Stage("stats", ("operand_stats.npz", BLOCKS_FILE), _stats),
    Stage("match", ("assignment.json", SEEDS_FILE), _match),
    Stage("export_search", (f"{SEARCH_DIR}/network.json", f"{SEARCH_DIR}/network.npz"),
          _export_search),
    Stage("search", ("pareto.csv", "pareto.json", "pareto.png", CHOSEN_FILE, RETRAINED_FILE,
                     f"{SEARCH_DIR}/{STORE_FILE}", f"{SEARCH_DIR}/{STATE_FILE}"), search_stage),
    _training("retrain"),
    Stage("export", ("network.json", "network.npz"), _export_final),
    Stage("deploy", ("firmware", "validation.json"), _deploy),
    Stage("report", ("report.md",), _report),
)
