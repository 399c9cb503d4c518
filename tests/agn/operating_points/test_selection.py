"""QoS-Nets' selection: at most K circuits on a fixed catalog, direct matching on MARLIN, and
the operating_points.json round trip."""
import dataclasses
import json

import numpy as np
import pytest

import errormodels as em
from agn.operating_points import (
    OperatingPoint,
    OperatingPointSet,
    PointsFileError,
    circuits,
    default_factors,
    kmeans,
    read_points,
    select_points,
    write_points,
)


def _layers(seed=0, n_layers=6):
    rng = np.random.default_rng(seed)
    stats, sigmas = [], []
    for i in range(n_layers):
        fan = int(rng.integers(9, 120))
        scales = rng.integers(10, 128, size=(12, 1))
        fields = rng.integers(0, scales + 1, size=(12, fan))
        w = rng.integers(-100, 101, size=(6, fan))
        stats.append(em.OperandStats.from_operands(
            f"layer{i}", w, fields, multiplications=fan * int(rng.integers(10, 1000)),
            out_std=float(rng.uniform(500, 5000)), out_mean=0.0, seed=seed))
        sigmas.append(em.LayerSigma(f"layer{i}", float(rng.uniform(0.005, 0.2))))
    return sigmas, stats


@pytest.fixture(scope="module")
def bam():
    return em.ErrorCatalog.build("bam:*")


def test_fixed_catalog_uses_at_most_k_circuits_and_cheaper_points_for_looser_factors(bam):
    sigmas, stats = _layers()
    pts = select_points(sigmas, stats, bam, (0.3, 1.0, 2.0), max_circuits=3)
    assert len(pts) == 3 and len(circuits(pts)) <= 3
    assert [p.details["factor"] for p in pts] == [0.3, 1.0, 2.0]
    energies = [p.energy for p in pts]
    assert energies == sorted(energies, reverse=True)
    # the same call gives the same points (seeded k-means)
    again = select_points(sigmas, stats, bam, (0.3, 1.0, 2.0), max_circuits=3)
    assert [p.specs() for p in again] == [p.specs() for p in pts]
    # one circuit: every layer of every point on the same multiplier
    one = select_points(sigmas, stats, bam, (0.3, 1.0, 2.0), max_circuits=1)
    assert len(circuits(one)) == 1


def test_marlin_ignores_the_circuit_limit_and_matches_each_scaled_tolerance():
    sigmas, stats = _layers(1)
    marlin = em.ErrorCatalog.build("marlin:*")
    pts = select_points(sigmas, stats, marlin, (0.3, 2.0), max_circuits=2)
    for s, p in zip((0.3, 2.0), pts):
        scaled = [dataclasses.replace(sg, sigma=sg.sigma * s) for sg in sigmas]
        assert p.specs() == em.match(scaled, stats, marlin).specs()
    assert len(circuits(pts)) > 2  # no limit on the reconfigurable catalog


def test_kmeans_separates_obvious_clusters_and_refuses_bad_k():
    rows = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5], [9, 0], [9, 0.1]])
    labels = kmeans(rows, 3)
    assert labels[0] == labels[1] != labels[2] == labels[3] != labels[4] == labels[5]
    assert len(set(kmeans(rows, 10))) == 6  # k capped at the distinct rows
    with pytest.raises(ValueError):
        kmeans(rows, 0)
    assert default_factors(3) == (0.3, 1.0, 2.0) and len(default_factors(5)) == 5


def test_points_file_round_trip_and_refusals(tmp_path, bam):
    sigmas, stats = _layers()
    pts = select_points(sigmas, stats, bam, (0.3, 2.0), max_circuits=2)
    s = OperatingPointSet(points=tuple(OperatingPoint(name=f"p{i}", assignment=a, factor=f,
                                                      energy=a.energy, val_accuracy=0.9,
                                                      extra_parameters=10 * i,
                                                      parameter_overhead=0.01 * i)
                                       for i, (a, f) in enumerate(zip(pts, (0.3, 2.0)))),
                          catalog="bam:*", max_circuits=2, factors=(0.3, 2.0),
                          exact={"val_accuracy": 0.95})
    path = write_points(tmp_path, s)
    back = read_points(tmp_path)
    assert back.to_json() == s.to_json() and back.circuits == circuits(pts)
    doc = json.loads(path.read_text())
    doc["surprise"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(PointsFileError, match="unknown keys"):
        read_points(path)
    path.write_text("{")
    with pytest.raises(PointsFileError, match="truncated or corrupt"):
        read_points(path)
