"""Accuracy recovery features at equal energy: compensation, operand rounding, calibration,
distillation; test accuracy of the bit-exact integer network, with and without retraining.

The MARLIN MNIST network is trained (float -> QAT -> noise, shortened) once per variant in
``--work-dir`` (reused when already there): activations 0..255 for MARLIN's levels, 0..127 for
the signed EvoApprox circuits, with each activation range estimator (``max``, ``percentile``,
``mse``, ``learned``) for the latter and ``learned`` for the former too. Every feature is
zero-cost (biases, zero points, weight grids), so a uniform assignment (every layer but the
exact classifier on one multiplier) has the same energy with and without it: each row compares
accuracies at one energy. "Retrained" rows run a short approximate retraining
(``--retrain-batches`` batches) first, plain or distilled. Prints a table and writes
``<work-dir>/recovery.json``.

    python bench/recovery.py --data-dir /path/to/mnist [--work-dir runs/recovery] [--quick]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from benchdata import command_line

from agn.cli.train import build_config
from agn.data import build_datamodule
from agn.export import export
from agn.intsim import integer_split, predict
from agn.layers import (
    approx_layers,
    approximate_,
    compensate_,
    input_pmfs,
    round_operands_,
    set_mode,
)
from agn.run import datamodule, pipeline_config
from agn.training import TrainConfig, finetune, load_stage_model, run_stages
from hwlib.catalogs import Catalog
from hwlib.fileio import atomic_write_json

MARLIN = ["marlin:255", "marlin:200", "marlin:127", "marlin:63"]
EVO = ["evo:mul8s_1KX5", "evo:mul8s_1L2J", "evo:mul8s_1L2L", "evo:mul8s_1L2N"]
VARIANTS = {  # name -> (catalog, calibration, specs)
    "marlin": ("marlin:*", "max", MARLIN),
    "evo": ("evo:mul8s_*", "max", EVO),
    "evo_percentile": ("evo:mul8s_*", "percentile", EVO),
    "evo_mse": ("evo:mul8s_*", "mse", EVO),
    "evo_learned": ("evo:mul8s_*", "learned", EVO),
    "marlin_learned": ("marlin:*", "learned", MARLIN),
}


def config(data_dir: Path, catalog: str, calibration: str, quick: bool) -> TrainConfig:
    """The shipped MARLIN MNIST configuration, shortened for a bench."""
    return build_config(["marlin_mnist"], {
        "data_args.root": str(data_dir), "data_args.download": False,
        "data_args.limit_train": 6000 if quick else 20000, "limit_val_batches": 4,
        "float_stage.epochs": 2 if quick else 4, "float_stage.milestones": [],
        "qat.epochs": 1, "noise_stage.epochs": 1, "catalog": catalog,
        "calibration": calibration, "progress_bar": False})


def trained(work: Path, name: str, cfg: TrainConfig):
    """Noise-stage model of variant ``name`` (the float stage is shared by all variants)."""
    run = work / name
    shared = work / "marlin"
    if name != "marlin" and not (run / "float").exists() and (shared / "float").exists():
        run.mkdir(parents=True, exist_ok=True)
        shutil.copytree(shared / "float", run / "float")
        shutil.copy(shared / "config.yaml", run / "config.yaml")
    run_stages(run, cfg, ("float", "qat", "noise"))
    dm = build_datamodule(cfg.data, seed=cfg.seed, **cfg.data_args)
    dm.prepare_data()
    dm.setup()
    model = load_stage_model("noise", run, cfg, dm)
    set_mode(model, "noise")
    return model.eval(), dm


def from_run(run: Path, threads: int) -> tuple[TrainConfig, torch.nn.Module, object]:
    """(training configuration, noise-stage model, set-up data module) of a pipeline run
    directory (``agn pipeline`` or a bench's ``--run-dir``), so a bench network trained once is
    measured here without training again."""
    cfg = dataclasses.replace(pipeline_config(run).train_config(None, threads),
                              compensate=False, round_operands=False, retrain_distill=0.0)
    dm = datamodule(cfg, setup=True)
    model = load_stage_model("noise", run, cfg, dm)
    set_mode(model, "noise")
    return cfg, model.eval(), dm


def exact_spec(catalog: str) -> str:
    """The exact member of ``catalog``."""
    cat = Catalog.build(catalog)
    return cat.specs[cat.exact_index]


def prepared(base, catalog: str, spec: str, rounding: bool, compensation: dict | None):
    """A copy of ``base`` with ``spec`` on every layer but the classifier (the catalog's exact
    member), the features applied."""
    model = copy.deepcopy(base)
    names = [n for n, _ in approx_layers(model)]
    last = exact_spec(catalog)
    approximate_(model, {n: (spec if i < len(names) - 1 else last) for i, n in enumerate(names)})
    if rounding:
        round_operands_(model)
    if compensation is not None:
        compensate_(model, compensation)
    set_mode(model, "approx")
    return model.eval()


def energy(model, catalog: str, spec: str) -> float:
    """Relative multiplication energy of the uniform assignment (the catalog's power table)."""
    layers = approx_layers(model)
    specs = [spec] * (len(layers) - 1) + [exact_spec(catalog)]
    return float(Catalog.build(catalog).energy(specs, [layer.last_macs for _, layer in layers]))


def test_accuracy(model, dm) -> float:
    """Test accuracy of the exported integer network (bit-exact engine)."""
    net = export(model, dm.input_shape, name="bench")
    x, y = integer_split(model, dm, "test")
    return float(np.mean(predict(net, x) == y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, help="directory of the MNIST IDX files (variants "
                    "trained here)")
    ap.add_argument("--work-dir", type=Path, default=Path("runs/recovery"))
    ap.add_argument("--quick", action="store_true", help="fewer images and epochs")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--run", nargs="+", default=[], metavar="NAME=DIR",
                    help="also measure the noise-trained network of a pipeline run directory "
                    "(its catalog and data); NAME picks the specs: marlin* MARLIN's, others "
                    "the signed EvoApprox ones, or --specs")
    ap.add_argument("--specs", nargs="+", help="uniform specs of the --run networks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retrain-batches", type=int, default=40,
                    help="batches of the short retraining (0: no retrained rows)")
    ap.add_argument("--retrain-specs", type=int, default=2,
                    help="most aggressive specs of each variant that are also retrained")
    ap.add_argument("--distill", type=float, default=0.5, help="distillation weight of the "
                    "distilled retraining rows")
    args = ap.parse_args()
    torch.manual_seed(0)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    test_images: dict[str, int] = {}
    t0 = time.perf_counter()
    sources = [(name, None) for name in args.variants] + [
        (tuple(r.split("=", 1)) if "=" in r else (Path(r).name, r)) for r in args.run]
    for name, run in sources:
        if run is None:
            if args.data_dir is None:
                raise SystemExit("--data-dir is needed for the variants trained here")
            catalog, calibration, specs = VARIANTS[name]
            cfg = config(args.data_dir, catalog, calibration, args.quick)
            base, dm = trained(args.work_dir, name, cfg)
        else:
            cfg, base, dm = from_run(Path(run), args.threads)
            catalog = cfg.catalog
            specs = args.specs or (MARLIN if name.startswith("marlin") else EVO)
        batches = [x for x, _ in itertools.islice(dm.train_dataloader(), cfg.calib_batches)]
        pmfs = input_pmfs(base, batches, len(batches))
        exact = prepared(base, catalog, exact_spec(catalog), False, None)
        test_images[name] = len(dm.split("test"))
        rows.append({"variant": name, "spec": "exact", "energy": 1.0, "features": "none",
                     "retrained": False, "test_acc": test_accuracy(exact, dm)})
        print(json.dumps(rows[-1]), flush=True)
        feats = [("none", False, False), ("compensate", False, True)]
        if not Catalog.build(catalog).is_reconfigurable:  # MARLIN's levels keep every bit
            feats += [("round", True, False), ("round+compensate", True, True)]
        for spec in specs:
            for label, rnd, comp in feats:
                model = prepared(base, catalog, spec, rnd, pmfs if comp else None)
                with torch.no_grad():
                    model(batches[0][:1])  # records the multiplication counts
                rows.append({"variant": name, "spec": spec, "energy": energy(model, catalog, spec),
                             "features": label, "retrained": False,
                             "test_acc": test_accuracy(model, dm)})
                print(json.dumps(rows[-1]), flush=True)
        if not args.retrain_batches:
            continue
        for spec in specs[-args.retrain_specs:]:
            for label, rnd, comp in feats:
                for distill in (0.0, args.distill):
                    model = prepared(base, catalog, spec, rnd, pmfs if comp else None)
                    rcfg = dataclasses.replace(cfg, retrain_distill=distill)
                    finetune(model, dm, rcfg, 1, args.retrain_batches)
                    with torch.no_grad():
                        model(batches[0][:1])
                    rows.append({"variant": name, "spec": spec,
                                 "energy": energy(model, catalog, spec),
                                 "features": label + (f"+distill{distill:g}" if distill else ""),
                                 "retrained": True, "test_acc": test_accuracy(model, dm)})
                    print(json.dumps(rows[-1]), flush=True)
    out = args.work_dir / "recovery.json"
    atomic_write_json(out, {"command": command_line("recovery.py", args), "rows": rows,
                            "seconds": time.perf_counter() - t0, "test_images": test_images,
                            "retrain_batches": args.retrain_batches, "quick": args.quick})
    print(f"\n{'variant':15s} {'spec':16s} {'energy':>6s} {'retrained':>9s} {'features':28s} acc")
    for r in rows:
        print(f"{r['variant']:15s} {r['spec']:16s} {r['energy']:6.3f} {str(r['retrained']):>9s} "
              f"{r['features']:28s} {100 * r['test_acc']:.2f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
