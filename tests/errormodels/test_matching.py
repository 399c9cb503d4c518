"""Matching rules, sigmas.json reading, assignment.json round trip and energy."""
import json
import math

import numpy as np
import pytest

import hwlib
from errormodels import (
    Assignment,
    AssignmentError,
    Catalog,
    ErrorCatalog,
    LayerSigma,
    OperandStats,
    SigmasError,
    StatsError,
    match,
    parse_sigmas,
    predict,
    read_assignment,
    read_sigmas,
    select,
    tolerances,
    write_assignment,
)
from hwlib import INT8, UINT7, TableMultiplier
from hwlib.power import EXACT_POWER

LEVELS = [f"marlin:{lv}" for lv in (0, 1, 3, 15, 63, 127, 128, 255)]


@pytest.fixture(scope="module")
def marlin_all():
    return ErrorCatalog.build("marlin:*")


def _layers(seed=0, n_layers=4):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_layers):
        fan = int(rng.integers(9, 120))
        scales = rng.integers(10, 256, size=(12, 1))
        fields = rng.integers(0, scales + 1, size=(12, fan))
        w = rng.integers(-100, 101, size=(6, fan))
        out.append(OperandStats.from_operands(
            f"layer{i}", w, fields, multiplications=fan * int(rng.integers(10, 1000)),
            out_std=float(rng.uniform(500, 5000)), out_mean=0.0, seed=seed))
    return out


def _brute_select(err, tol, power, feasible, rule):
    """Per-layer loop over sorted candidates: the obvious statement of each rule."""
    out = []
    for i in range(err.shape[0]):
        cands = [j for j in range(err.shape[1]) if feasible[i, j]]
        if rule == "cheapest":
            cands = [j for j in cands if err[i, j] <= tol[i]]
            out.append(min(cands, key=lambda j: (power[j], err[i, j], j)))
        else:
            out.append(min(cands, key=lambda j: (abs(err[i, j] - tol[i]), power[j], j)))
    return out


@pytest.mark.parametrize("rule", ["cheapest", "nearest"])
def test_select_matches_brute_force_on_random_inputs(rule):
    rng = np.random.default_rng(1)
    for _ in range(200):
        n_l, n_m = rng.integers(1, 6), rng.integers(1, 7)
        err = rng.integers(0, 6, size=(n_l, n_m)).astype(float)   # many ties
        err[:, 0] = 0.0                                             # column 0 is exact
        power = rng.integers(1, 4, size=n_m) / 4
        feasible = rng.random((n_l, n_m)) < 0.8
        feasible[:, 0] = True
        tol = rng.integers(0, 6, size=n_l).astype(float)
        got = select(err, tol, power, feasible, rule)
        assert list(got) == _brute_select(err, tol, power, feasible, rule)


def test_cheapest_respects_tolerance_and_exact_is_fallback():
    stats = _layers()
    cat = ErrorCatalog.build(LEVELS)
    pred = predict(stats, cat)
    sig = [LayerSigma(s.name, sg) for s, sg in zip(stats, (0.0, 1e-9, 0.05, -0.5))]
    a = match(sig, stats, cat, "cheapest")
    assert [layer.name for layer in a.layers] == [s.name for s in stats]
    for i, layer in enumerate(a.layers):
        assert layer.tolerance == pytest.approx(abs(sig[i].sigma) * stats[i].out_std)
        j = cat.specs.index(layer.multiplier)
        assert layer.predicted_std == pred.std[i, j] and layer.predicted_mean == pred.mean[i, j]
        assert layer.predicted_std <= layer.tolerance
        cheaper = [k for k in range(len(cat)) if cat.relative_power[k] < layer.relative_power]
        assert all(pred.std[i, k] > layer.tolerance for k in cheaper)
    assert a.layers[0].multiplier == "marlin:0"      # zero tolerance -> exact
    assert a.layers[1].multiplier == "marlin:0"
    assert a.layers[3].multiplier != "marlin:0"      # sign of sigma ignored


def test_rms_metric_is_stricter_than_std_for_biased_levels(marlin_all):
    stats = _layers(2)
    cat = marlin_all
    sig = [LayerSigma(s.name, 0.05) for s in stats]
    by_std = match(sig, stats, cat, metric="std")
    by_rms = match(sig, stats, cat, metric="rms")
    pred = predict(stats, cat)
    for s, r in zip(by_std.layers, by_rms.layers):
        assert math.hypot(r.predicted_std, r.predicted_mean) <= r.tolerance
        assert r.relative_power >= s.relative_power
    assert by_rms.energy >= by_std.energy and by_rms.metric == "rms"
    assert np.any(pred.rms > pred.std)


def test_nearest_rule_picks_closest_predicted_std(marlin_all):
    stats = _layers(3)
    cat = marlin_all
    sig = [LayerSigma(s.name, 0.1) for s in stats]
    a = match(sig, stats, cat, "nearest")
    pred = predict(stats, cat)
    for i, layer in enumerate(a.layers):
        best = np.min(np.abs(pred.std[i] - layer.tolerance))
        assert abs(layer.predicted_std - layer.tolerance) == best


def test_energy_is_weighted_relative_power():
    specs = ["marlin:0", "marlin:255", "marlin:15"]
    counts = [100, 300, 50]
    loop = sum(c * hwlib.get(s).power_mw for s, c in zip(specs, counts)) / \
        sum(c * hwlib.get("marlin:0").power_mw for c in counts)
    energy = Catalog.build("marlin:*").energy
    assert energy(specs, counts) == pytest.approx(loop, rel=1e-12)
    assert energy(dict(zip("abc", specs)), counts) == pytest.approx(loop, rel=1e-12)
    assert energy(["marlin:0"] * 3, counts) == 1.0
    with pytest.raises(AssignmentError, match="3 layers but 2 multiplication counts"):
        energy(specs, counts[:2])
    with pytest.raises(AssignmentError, match="non-negative integers"):
        energy(specs, [1, -1, 3])
    with pytest.raises(AssignmentError, match="'evo:mul8s_1L2N' is not in catalog 'marlin:\\*'"):
        energy(["evo:mul8s_1L2N"], [1])


def test_assignment_json_round_trip_and_shape(marlin_all, tmp_path):
    stats = _layers(4)
    cat = marlin_all
    a = match([LayerSigma(s.name, 0.2) for s in stats], stats, cat)
    path = write_assignment(tmp_path, a)
    assert path.name == "assignment.json"
    obj = json.loads(path.read_text())
    assert set(obj) == {"version", "catalog", "rule", "metric", "energy", "power_source",
                        "layers"}
    assert obj["version"] == 1
    assert obj["catalog"] == "marlin:*" and obj["rule"] == "cheapest"
    assert obj["power_source"].startswith("MARLIN UMC 65 nm")
    assert set(obj["layers"][0]) == {"name", "multiplier", "sigma", "tolerance", "predicted_std",
                                     "predicted_mean", "relative_power", "multiplications"}
    back = read_assignment(tmp_path)
    assert back == a
    assert cat.catalog.energy(back) == a.energy
    assert a.energy == pytest.approx(
        sum(x.multiplications * x.relative_power for x in a.layers)
        / sum(x.multiplications for x in a.layers), rel=1e-12)
    assert back.specs() == {x.name: x.multiplier for x in a.layers}


def test_read_assignment_errors(tmp_path):
    p = tmp_path / "assignment.json"
    p.write_text("{")
    with pytest.raises(AssignmentError, match="not valid JSON"):
        read_assignment(p)
    p.write_text(json.dumps({"version": 1, "catalog": "x", "rule": "cheapest", "energy": 1.0,
                             "power_source": "s", "layers": [{"name": "a"}]}))
    with pytest.raises(AssignmentError,
                       match=r"layers\[0\] expected 'name' and either 'multiplier'"):
        read_assignment(p)
    p.write_text(json.dumps({"family": "x", "layers": []}))
    with pytest.raises(AssignmentError, match="'layers' must be a non-empty list"):
        read_assignment(p)
    p.write_text(json.dumps({"version": 1, "energy": -1.0,
                             "layers": [{"name": "a", "multiplier": "exact"}]}))
    with pytest.raises(AssignmentError, match="energy must be a finite number >= 0, got -1.0"):
        read_assignment(p)
    with pytest.raises(AssignmentError, match="no file"):
        read_assignment(tmp_path / "nope.json")


def test_sigmas_file_forms_and_validation(tmp_path):
    rows = [{"name": "a", "sigma": 0.1, "multiplications": 900, "fan_in": 9},
            {"name": "b", "sigma": -0.3}]
    (tmp_path / "bare.json").write_text(json.dumps(rows))
    (tmp_path / "sigmas.json").write_text(json.dumps({"layers": rows}))
    assert read_sigmas(tmp_path / "bare.json") == read_sigmas(tmp_path)
    assert read_sigmas(tmp_path)[0] == LayerSigma("a", 0.1, 900, 9)
    (tmp_path / "nan.json").write_text('[{"name": "a", "sigma": NaN}]')
    with pytest.raises(SigmasError, match="layer 'a' has sigma=nan"):
        read_sigmas(tmp_path / "nan.json")
    (tmp_path / "null.json").write_text('[{"name": "a", "sigma": null}]')
    with pytest.raises(SigmasError, match="sigma=nan"):
        read_sigmas(tmp_path / "null.json")
    with pytest.raises(SigmasError, match="duplicate layer names"):
        parse_sigmas([{"name": "a", "sigma": 1}, {"name": "a", "sigma": 2}])


def test_layer_mismatch_with_stats_is_reported():
    stats = _layers(5, 3)
    cat = ErrorCatalog.build(["marlin:0", "marlin:3"])
    sig = [LayerSigma("layer0", 0.1), LayerSigma("layer1", 0.1), LayerSigma("other", 0.1)]
    with pytest.raises(SigmasError, match=r"without statistics: \['other'\]; without sigma: "
                                          r"\['layer2'\]"):
        match(sig, stats, cat)
    bad = [LayerSigma(s.name, 0.1, multiplications=s.multiplications + 1) for s in stats]
    with pytest.raises(SigmasError, match="multiplications="):
        match(bad, stats, cat)
    with pytest.raises(SigmasError, match="sigma at layer 1 is nan"):
        tolerances(np.array([0.1, np.nan]), np.array([1.0, 1.0]))


def test_exact_appended_when_catalog_lacks_one():
    stats = _layers(6, 2)
    cat = ErrorCatalog.build(["marlin:255"])
    assert cat.specs == ("marlin:255", "exact")
    a = match([LayerSigma(s.name, 0.0) for s in stats], stats, cat)
    assert [x.multiplier for x in a.layers] == ["exact", "exact"]
    assert a.energy == 1.0 and isinstance(a, Assignment)


def test_layer_outside_catalog_domain_is_named():
    rng = np.random.default_rng(7)
    st = OperandStats.from_operands("conv9", rng.integers(-5, 6, size=(5, 4)),
                                    np.array([[0, 3, 200, 7]]), multiplications=40,
                                    out_std=10.0, out_mean=0.0, seed=0)
    xs, ws = np.arange(128)[:, None], np.arange(-128, 128)[None, :]
    exact7 = TableMultiplier("test:exact7", xs * ws, UINT7, INT8, EXACT_POWER)
    cat = ErrorCatalog.build([exact7])
    assert cat.specs == ("test:exact7",)
    with pytest.raises(StatsError, match=r"layer 'conv9' uses activations 0..200 .* takes "
                                         r"activations 0..127"):
        match([LayerSigma("conv9", 0.1)], [st], cat)


def test_signed_evoapprox_catalog_matching():
    rng = np.random.default_rng(8)
    stats = [OperandStats.from_operands(
        f"l{i}", rng.integers(-127, 128, size=(4, fan)),
        rng.integers(0, rng.integers(20, 128, size=(10, 1)), size=(10, fan)),
        multiplications=fan * 100, out_std=3000.0, out_mean=0.0, seed=0)
        for i, fan in enumerate((25, 150))]
    cat = ErrorCatalog.build("evo:mul8s_*")
    assert len(cat) == 13 and cat.specs[cat.exact_index] == "evo:mul8s_1KV6"
    assert cat.relative_power[cat.specs.index("evo:mul8s_1L2N")] == pytest.approx(0.126 / 0.425)
    pred = predict(stats, cat)
    assert pred.feasible.all()
    for sigma in (0.0, 0.05, 0.5):
        a = match([LayerSigma(s.name, sigma) for s in stats], stats, cat)
        for i, layer in enumerate(a.layers):
            ok = [j for j in range(13) if pred.std[i, j] <= layer.tolerance]
            assert layer.relative_power == min(cat.relative_power[j] for j in ok)
        if sigma == 0.0:
            assert all(x.multiplier == "evo:mul8s_1KV6" for x in a.layers) and a.energy == 1.0


def test_precomputed_prediction_must_fit():
    stats = _layers(9, 3)
    cat = ErrorCatalog.build(["marlin:0", "marlin:7"])
    sig = [LayerSigma(s.name, 0.1) for s in stats]
    pred = predict(stats, cat)
    assert match(sig, stats, cat, prediction=pred) == match(sig, stats, cat)
    with pytest.raises(ValueError, match=r"prediction has shape \(2, 2\), expected \(3 layers"):
        match(sig, stats, cat, prediction=predict(stats[:2], cat))
