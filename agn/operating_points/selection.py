"""QoS-Nets' selection of operating points from one noise training and its operand statistics.

Each operating point scales every layer's tolerance ``|sigma_l| * std(y_l)`` by a factor ``s``
(default 0.3, 1, 2: a tighter tolerance is a more accurate, costlier point). For a fixed catalog
the rows ``(layer, s)`` of the ratio matrix ``r[m] = predicted_std(m) / (s * tolerance)`` are
clustered into at most ``k`` clusters (k-means); each cluster takes the cheapest multiplier
whose centroid coordinate is at most 1, and every row of the cluster uses it. The network then
needs at most ``k`` distinct circuits, and a point is a different layer -> circuit mapping over
them. MARLIN's 256 levels are all on chip, so there the circuit limit does not apply and each
scaled tolerance is matched directly (cheapest level within it).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

import errormodels as em
from hwlib.assignment import Assignment, LayerAssignment

DEFAULT_FACTORS = (0.3, 1.0, 2.0)
#: Selection methods of the operating-points stage: this module's clustering, or NSGA-II over
#: all points seeded by it (:mod:`agn.operating_points.joint`).
METHODS = ("cluster", "joint")
#: Ratios are clipped here before clustering: any ratio above 1 already rules a multiplier out,
#: and infeasible pairs (infinite ratios) must not dominate the centroids.
RATIO_CAP = 4.0


def default_factors(n_points: int) -> tuple[float, ...]:
    """QoS-Nets' factors (0.3, 1, 2) for 3 points, else ``n_points`` geometric steps 0.3..2."""
    if n_points < 1:
        raise ValueError(f"operating points: expected at least 1 point, got {n_points}")
    if n_points == 3:
        return DEFAULT_FACTORS
    if n_points == 1:
        return (1.0,)
    return tuple(float(f) for f in np.geomspace(0.3, 2.0, n_points))


def kmeans(rows: np.ndarray, k: int, seed: int = 0, restarts: int = 8,
           iterations: int = 100) -> np.ndarray:
    """Cluster labels (n,) of ``rows`` (n, d) into at most ``k`` clusters: Lloyd's algorithm from
    k-means++ starts drawn with ``seed``, the lowest inertia of ``restarts`` runs kept."""
    x = np.asarray(rows, np.float64)
    n = len(x)
    k = min(k, len(np.unique(x, axis=0)))
    if k < 1:
        raise ValueError(f"kmeans: expected k >= 1 and at least one row, got k={k}, {n} rows")
    rng = np.random.default_rng(seed)
    best, best_inertia = np.zeros(n, np.int64), np.inf
    for _ in range(restarts):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min([((x - c) ** 2).sum(axis=1) for c in centres], axis=0)
            centres.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0
                           else x[rng.integers(n)])
        c = np.array(centres)
        labels = np.full(n, -1)
        for _ in range(iterations):
            new = ((x[:, None, :] - c[None]) ** 2).sum(axis=2).argmin(axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            c = np.array([x[labels == j].mean(axis=0) if (labels == j).any() else c[j]
                          for j in range(k)])
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best_inertia - 1e-12:
            best, best_inertia = labels, inertia
    _, relabelled = np.unique(best, return_inverse=True)  # labels 0..k'-1, in first-use order
    return relabelled.astype(np.int64)


def cluster_choice(ratios: np.ndarray, labels: np.ndarray, relative_power: np.ndarray
                   ) -> np.ndarray:
    """Per cluster, the index of the cheapest multiplier whose centroid ratio is <= 1 (ties: the
    smaller centroid ratio); an exact member (ratio 0) always qualifies."""
    out = []
    for j in range(int(labels.max()) + 1):
        centroid = ratios[labels == j].mean(axis=0)
        ok = centroid <= 1.0
        if not ok.any():
            raise ValueError(f"operating points: cluster {j} has no multiplier within its "
                             f"tolerance (no exact member in the catalog?)")
        power = np.where(ok, relative_power, np.inf)
        tie = ok & (power == power.min())
        out.append(int(np.argmin(np.where(tie, centroid, np.inf))))
    return np.array(out, np.int64)


def select_points(sigmas: Sequence[em.LayerSigma], stats: Sequence[em.OperandStats],
                  catalog: em.ErrorCatalog, factors: Sequence[float] = DEFAULT_FACTORS,
                  max_circuits: int | None = None, prediction: em.Prediction | None = None,
                  seed: int = 0) -> tuple[Assignment, ...]:
    """One assignment per factor (QoS-Nets' method; see the module docstring).

    Args:
        sigmas: learned sigma per layer (the network's layer order).
        stats: operand statistics of the same layers.
        catalog: the candidate multipliers.
        factors: tolerance scale of each point.
        max_circuits: at most this many distinct multipliers over all points (a fixed catalog);
            None, or a reconfigurable catalog (MARLIN), matches every scaled tolerance directly.
        prediction: the predicted errors of ``stats`` in ``sigmas`` order (computed if None).
        seed: seed of the k-means starts.

    Returns:
        The assignments, in ``factors`` order; ``details`` records the factor and the method.
    """
    factors = tuple(float(f) for f in factors)
    if not factors or any(not np.isfinite(f) or f <= 0 for f in factors):
        raise ValueError(f"operating points: expected positive finite tolerance factors, got "
                         f"{list(factors)}")
    if max_circuits is not None and max_circuits < 1:
        raise ValueError(f"operating points: max_circuits expected >= 1 (or None), got "
                         f"{max_circuits}")
    pairs = em.pair_with_stats(sigmas, stats)
    ordered = [st for _, st in pairs]
    pred = em.predict(ordered, catalog) if prediction is None else prediction
    direct = max_circuits is None or catalog.catalog.is_reconfigurable
    if direct:
        method = "matched per scaled tolerance" + (" (reconfigurable: no circuit limit)"
                                                   if max_circuits is not None else "")
        return tuple(dataclasses.replace(
            em.match([dataclasses.replace(sg, sigma=sg.sigma * s) for sg in sigmas], stats,
                     catalog, prediction=pred),
            rule="qos-nets", details={"factor": s, "method": method}) for s in factors)
    tol = em.tolerances(np.array([sg.sigma for sg, _ in pairs]),
                        np.array([st.out_std for st in ordered]))
    n_layers = len(pairs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.concatenate([pred.std / (s * tol[:, None]) for s in factors])
    ratios = np.where(np.isnan(ratios) | ~np.tile(pred.feasible, (len(factors), 1)), np.inf,
                      ratios)
    ratios = np.minimum(ratios, RATIO_CAP)
    assert max_circuits is not None  # direct matching otherwise
    labels = kmeans(ratios, max_circuits, seed)
    choice = cluster_choice(ratios, labels, catalog.relative_power)[labels]
    out = []
    for p, s in enumerate(factors):
        rows = choice[p * n_layers:(p + 1) * n_layers]
        layers = tuple(LayerAssignment(
            name=sg.name, multiplier=catalog.specs[j], sigma=float(sg.sigma),
            tolerance=float(s * tol[i]), predicted_std=float(pred.std[i, j]),
            predicted_mean=float(pred.mean[i, j]),
            relative_power=float(catalog.relative_power[j]), multiplications=st.multiplications)
            for i, ((sg, st), j) in enumerate(zip(pairs, rows)))
        specs = [x.multiplier for x in layers]
        out.append(Assignment(
            layers=layers, catalog=catalog.family, rule="qos-nets", metric="std",
            energy=catalog.catalog.energy(specs, [st.multiplications for st in ordered]),
            power_source=catalog.catalog.power_source_of(specs),
            details={"factor": s, "method": f"k-means over the ratio matrix, at most "
                                             f"{max_circuits} circuits",
                     "clusters": labels[p * n_layers:(p + 1) * n_layers].tolist()}))
    return tuple(out)


def circuits(assignments: Sequence[Assignment]) -> tuple[str, ...]:
    """The distinct multipliers a set of assignments uses, sorted."""
    return tuple(sorted({x.multiplier for a in assignments for x in a.layers}))
