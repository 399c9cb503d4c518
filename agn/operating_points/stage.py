"""The operating-points stage on a run directory (``agn operating-points``).

From the run's noise training and operand statistics: select the points (QoS-Nets' clustering,
or with ``method="joint"`` NSGA-II over all points seeded by it, :mod:`.joint`), retrain
them jointly with shared weights, export one integer network per point (same weights), score
each bit-exactly against the exact integer network, emit the firmware with every point and
validate every point on the host while switching, then write ``operating_points.json``,
``operating_points.png`` and ``operating_points/validation.json``.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import errormodels as em
from agn.export import export
from agn.intsim import IntegerScorer, integer_split, predict
from agn.layers import approx_layers, approximate_
from agn.operating_points.affine import base_parameters, extra_parameters, select_point
from agn.operating_points.joint import JointSettings, joint_points
from agn.operating_points.points_file import (
    OperatingPoint,
    OperatingPointSet,
    write_points,
)
from agn.operating_points.report import PLOT_FILE, front_of, plot_points
from agn.operating_points.selection import METHODS, default_factors, select_points
from agn.operating_points.training import retrain_points
from agn.run import datamodule, load_stage_model, pipeline_config
from deploy.points import PointNetwork, validate_points
from hwlib.catalogs import Catalog
from hwlib.fileio import atomic_write_json

POINTS_DIR = "operating_points"


@dataclass(frozen=True, kw_only=True)
class PointsSettings:
    """What the stage does.

    Attributes:
        points: number of operating points.
        max_circuits: distinct circuits allowed over all points (ignored for MARLIN).
        factors: tolerance factors (empty: :func:`default_factors` of ``points``).
        catalog: the catalog (default: the run's); the key of the settings includes it.
        epochs: epochs of joint retraining (0: none).
        batches: batches per epoch (0: all).
        val_samples: validation images scored per point (0: all).
        deploy_inputs: test inputs of the firmware validation.
        method: ``cluster`` (QoS-Nets' selection) or ``joint`` (NSGA-II over all points,
            seeded by the clustering; :mod:`agn.operating_points.joint`).
        joint_pop, joint_gen: the joint search's population and generations.
        joint_val: validation images each joint candidate is scored on (0: all).
        compensate: error-mean compensation per point (each point's bias corrections of its
            multipliers, kept through retraining and folded into its integer biases).
    """

    points: int = 3
    max_circuits: int | None = 4
    factors: tuple[float, ...] = ()
    catalog: str | None = None
    epochs: int = 1
    batches: int = 0
    val_samples: int = 0
    deploy_inputs: int = 4
    method: str = "cluster"
    joint_pop: int = 20
    joint_gen: int = 10
    joint_val: int = 1000
    compensate: bool = False

    def __post_init__(self) -> None:
        factors = tuple(self.factors) if self.factors else default_factors(self.points)
        if len(factors) != self.points:
            raise ValueError(f"operating points: {self.points} points but {len(factors)} "
                             f"tolerance factors {list(factors)}")
        object.__setattr__(self, "factors", tuple(float(f) for f in factors))
        for k in ("epochs", "batches", "val_samples"):
            if getattr(self, k) < 0:
                raise ValueError(f"operating points: {k} expected >= 0, got {getattr(self, k)}")
        if self.deploy_inputs < 1:
            raise ValueError(f"operating points: deploy_inputs expected >= 1, got "
                             f"{self.deploy_inputs}")
        if self.catalog is not None:
            Catalog.build(self.catalog)  # a bad spec is refused before any training
        if self.method not in METHODS:
            raise ValueError(f"operating points: method expected one of {list(METHODS)}, got "
                             f"{self.method!r}")
        for k, low in (("joint_pop", 2), ("joint_gen", 1), ("joint_val", 0)):
            if getattr(self, k) < low:
                raise ValueError(f"operating points: {k} expected >= {low}, got "
                                 f"{getattr(self, k)}")

    def record(self) -> dict:
        """The settings as plain data (the joint search's budget only with that method, and
        compensation only when on, so the settings of before keep their key)."""
        doc = dataclasses.asdict(self)
        if self.method == "cluster":
            for k in ("method", "joint_pop", "joint_gen", "joint_val"):
                del doc[k]
        if not self.compensate:
            del doc["compensate"]
        return doc

    def key(self) -> str:
        """A short digest of the settings (names the stage's output in ``pipeline.json``)."""
        import hashlib

        text = json.dumps(self.record(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _fresh_dir(out: Path, settings: PointsSettings, catalog: str) -> None:
    """``out`` for these settings: kept (a killed run resumes) when it was made with them, else
    emptied with a note on stderr. The settings are kept in ``settings-<key>.json``."""
    doc = {**settings.record(), "catalog": catalog}
    doc["factors"] = list(doc["factors"])
    path = out / settings_file(settings)
    if out.exists() and (not path.exists() or json.loads(path.read_text()) != doc):
        if any(out.iterdir()):
            print(f"agn operating-points: {out} was made with other settings; starting over",
                  file=sys.stderr)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        atomic_write_json(path, doc)


def settings_file(settings: PointsSettings) -> str:
    """Name of the settings record in ``operating_points/`` (a pipeline stage output, so other
    settings run the stage again)."""
    return f"settings-{settings.key()}.json"


def points_stage(settings: PointsSettings):
    """The pipeline stage running :func:`run_operating_points` (before the report)."""
    from agn.pipeline.runner import Stage

    def run(ctx) -> dict:
        res = run_operating_points(ctx.run_dir, settings)
        return {"points": len(res.points), "circuits": list(res.circuits),
                "energies": [p.energy for p in res.points],
                "test_accuracies": [p.test_accuracy for p in res.points]}

    return Stage("operating_points", ("operating_points.json", PLOT_FILE,
                                      f"{POINTS_DIR}/{settings_file(settings)}",
                                      f"{POINTS_DIR}/validation.json"), run)


def run_operating_points(run_dir: str | Path, settings: PointsSettings = PointsSettings(),
                         log: Callable[[str], None] = print) -> OperatingPointSet:
    """Run the stage on a run directory whose noise training and statistics exist (see the
    module docstring); returns the written point set.

    Raises:
        RuntimeError: the firmware disagrees with the reference at some point.
    """
    run = Path(run_dir)
    cfg = pipeline_config(run)
    train = cfg.train_config(threads=0)
    catalog_spec = settings.catalog or cfg.catalog
    out = run / POINTS_DIR
    _fresh_dir(out, settings, catalog_spec)
    sigmas = em.read_sigmas(run / em.SIGMAS_FILE)
    stats = em.load_stats(run / em.STATS_FILE)
    catalog = em.ErrorCatalog.build(catalog_spec)
    log(f"[operating-points] selecting {settings.points} points over {catalog_spec}")
    chosen = select_points(sigmas, stats, catalog, settings.factors, settings.max_circuits,
                           seed=cfg.seed)
    dm = datamodule(train, setup=True)
    noise = load_stage_model("noise", run, train, dm).eval()
    exact_net = _exact_network(noise, dm, catalog_spec)
    joint = None
    if settings.method == "joint":
        log(f"[operating-points] joint NSGA-II over the {settings.points} points, seeded by the "
            f"clustering")
        xs, ys = integer_split(noise, dm, "val", settings.joint_val)
        chosen, joint = joint_points(
            IntegerScorer(exact_net, xs, ys), sigmas, stats, catalog, chosen, settings.factors,
            settings.max_circuits, JointSettings(pop_size=settings.joint_pop,
                                                 n_gen=settings.joint_gen, seed=cfg.seed), log)
        joint["val_samples"] = len(ys)
    specs = [a.specs() for a in chosen]
    log(f"[operating-points] joint retraining, {settings.epochs} epoch(s)")
    result = retrain_points(out, run, train, dm, specs, settings.epochs, settings.batches,
                            compensate=settings.compensate)
    model = result.model
    name = f"{cfg.train.model}_points"
    nets = []
    with torch.no_grad():
        for p, s in enumerate(specs):
            select_point(model, p, s)
            nets.append(export(model, dm.input_shape, name=name, mean=dm.mean, std=dm.std))
    select_point(model, 0, specs[0])
    pts = PointNetwork.from_networks(nets)
    xv, yv = integer_split(model, dm, "val", settings.val_samples)
    xt, yt = integer_split(model, dm, "test")
    exact_val, exact_test = (float(np.mean(predict(exact_net, x) == y))
                             for x, y in ((xv, yv), (xt, yt)))
    log("[operating-points] firmware with every point, validated on the host")
    rep = validate_points(pts, xt[:settings.deploy_inputs], out)
    if not rep.ok:
        raise RuntimeError(f"operating-point firmware disagrees with the reference: "
                           f"{rep.mismatches} mismatching values (see {out / 'validation.json'})")
    extra, base = extra_parameters(model), base_parameters(model)
    points = tuple(OperatingPoint(
        name=pts.names[p], assignment=a, factor=f, energy=float(a.energy or 0.0),
        val_accuracy=float(np.mean(predict(pts.network_at(p), xv) == yv)),
        test_accuracy=float(np.mean(predict(pts.network_at(p), xt) == yt)),
        extra_parameters=extra if p else 0, parameter_overhead=extra / base if p else 0.0)
        for p, (a, f) in enumerate(zip(chosen, settings.factors)))
    mem = rep.memory
    result_set = OperatingPointSet(
        points=points, catalog=catalog_spec, max_circuits=settings.max_circuits,
        factors=settings.factors, exact={"val_accuracy": exact_val, "test_accuracy": exact_test},
        details={"epochs": result.epochs, "batches": settings.batches,
                 "reconfigurable": Catalog.build(catalog_spec).is_reconfigurable,
                 "base_parameters": base, "total_parameter_overhead": extra * (len(points) - 1)
                 / base, "validation": {"mismatches": rep.mismatches, "sequence":
                                        list(rep.sequence), "inputs": rep.inputs,
                                        "bytes_per_extra_point": mem["bytes_per_extra_point"],
                                        "parameter_bytes": rep.parameter_bytes},
                 "method": settings.method, "compensate": settings.compensate,
                 **({"joint": joint} if joint else {})})
    write_points(run, result_set)
    plot_points(run / PLOT_FILE, result_set, front_of(run))
    return result_set


def _exact_network(noise: torch.nn.Module, dm, catalog: str):
    """The noise-trained network with every layer exact, exported (``noise`` is changed)."""
    exact = Catalog.build(catalog).exact.spec
    approximate_(noise, {n: exact for n, _ in approx_layers(noise)})
    return export(noise, dm.input_shape, name="exact")
