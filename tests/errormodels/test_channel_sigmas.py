"""Per-channel sigmas: the versioned sigmas.json and filter matching from channel tolerances."""
from __future__ import annotations

import json

import numpy as np
import pytest

from errormodels import ErrorCatalog, LayerSigma, OperandStats, SigmasError, read_sigmas
from errormodels.channels import match_filters, predict_channels
from errormodels.sigmas import parse_sigmas, sigmas_document

CAT = ["exact", "marlin:0", "marlin:40", "marlin:120", "marlin:255"]
OLD_FILE = {"lambda": 0.2, "sigma_max": 1.0, "seed": 0, "layers": [
    {"name": "conv1", "sigma": 0.05, "multiplications": 3456, "fan_in": 9},
    {"name": "fc", "sigma": 0.2, "multiplications": 640, "fan_in": 64}]}


def _stats(channels: int = 8, fan_in: int = 18, seed: int = 1) -> OperandStats:
    rng = np.random.default_rng(seed)
    fields = rng.integers(0, 256, (24, fan_in)) * (rng.random((24, fan_in)) > 0.3)
    scale = np.linspace(2, 120, channels).astype(int)[:, None]
    weights = np.clip(rng.normal(0, 1, (channels, fan_in)) * scale, -127, 127).astype(np.int64)
    return OperandStats.from_operands("conv", weights, fields,
                                      multiplications=fields.shape[1] * 50, out_std=2000.0,
                                      out_mean=0.0, seed=0)


def test_an_old_unversioned_sigmas_file_still_reads(tmp_path):
    (tmp_path / "sigmas.json").write_text(json.dumps(OLD_FILE))
    got = read_sigmas(tmp_path)
    assert [(s.name, s.sigma, s.multiplications, s.fan_in, s.channel_sigmas) for s in got] == \
        [("conv1", 0.05, 3456, 9, None), ("fc", 0.2, 640, 64, None)]
    assert sigmas_document(OLD_FILE["layers"], {k: OLD_FILE[k] for k in
                                                ("lambda", "sigma_max", "seed")}) == OLD_FILE


def test_channel_sigmas_write_version_2_and_read_back(tmp_path):
    rows = [{"name": "conv1", "sigma": 0.3, "multiplications": 80, "fan_in": 9,
             "channel_sigmas": [0.1, 0.2, 0.5]}, OLD_FILE["layers"][1]]
    doc = sigmas_document(rows, {"lambda": 0.2})
    assert doc["version"] == 2 and list(doc) == ["version", "lambda", "layers"]
    (tmp_path / "sigmas.json").write_text(json.dumps(doc))
    conv, fc = read_sigmas(tmp_path / "sigmas.json")
    assert conv.channel_sigmas == (0.1, 0.2, 0.5) and fc.channel_sigmas is None
    assert conv.scaled(2.0).channel_sigmas == (0.2, 0.4, 1.0) and conv.scaled(2.0).sigma == 0.6


@pytest.mark.parametrize("doc, message", [
    ({"version": 3, "layers": OLD_FILE["layers"]}, "version 3 is not one this toolkit reads"),
    ({"layers": [{"name": "a", "sigma": 0.1, "channel_sigmas": [0.1]}]}, "version-1 file"),
    ({"version": 2, "layers": [{"name": "a", "sigma": 0.1, "channel_sigmas": []}]},
     "channel_sigmas=()"),
    ({"version": 2, "layers": [{"name": "a", "sigma": 0.1, "channel_sigmas": [0.1, None]}]},
     "finite numbers"),
])
def test_bad_channel_sigmas_are_refused_with_the_reason(doc, message):
    with pytest.raises(SigmasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sigmas(doc)


def test_filter_matching_takes_each_group_s_tolerance_from_its_least_tolerant_channel():
    st = _stats()
    cat = ErrorCatalog.build(CAT)
    per = predict_channels(st, cat)
    tol = float(np.median(per.std[:, CAT.index("marlin:40")]))
    sigma = tol / st.out_std
    layer_wise = match_filters([LayerSigma("conv", sigma)], [st], cat, group=2)
    equal = match_filters([LayerSigma("conv", sigma, channel_sigmas=(sigma,) * 8)], [st], cat,
                          group=2)
    assert equal.layers == layer_wise.layers and equal.energy == layer_wise.energy
    loose = (sigma * 100,) * 8
    strict = (sigma * 100,) * 6 + (0.0, sigma * 100)  # channel 6 tolerates nothing
    a = match_filters([LayerSigma("conv", sigma, channel_sigmas=loose)], [st], cat, group=2)
    b = match_filters([LayerSigma("conv", sigma, channel_sigmas=strict)], [st], cat, group=2)
    assert [g.multiplier for g in b.layers[0].groups][:3] == \
        [g.multiplier for g in a.layers[0].groups][:3]
    assert b.layers[0].groups[3].multiplier == "exact" != a.layers[0].groups[3].multiplier
    assert b.energy > a.energy
    with pytest.raises(SigmasError, match="3 channel sigmas for 8 output channels"):
        match_filters([LayerSigma("conv", sigma, channel_sigmas=(0.1,) * 3)], [st], cat)


def test_agn_match_filter_uses_the_channel_sigmas_of_a_version_2_file(tmp_path, capsys):
    from agn.cli import main
    from errormodels import load_stats, read_assignment, save_stats

    st = _stats()
    save_stats(tmp_path / "operand_stats.npz", [st])
    cat = ErrorCatalog.build(CAT)
    sigma = float(np.median(predict_channels(st, cat).std[:, 2])) / st.out_std
    row = {"name": "conv", "sigma": sigma, "multiplications": st.multiplications,
           "fan_in": st.fan_in}
    (tmp_path / "sigmas.json").write_text(json.dumps(sigmas_document([row])))
    assert main(["match", "--run-dir", str(tmp_path), "--catalog", ",".join(CAT),
                 "--granularity", "filter", "--group", "2", "--output",
                 str(tmp_path / "layer.json")]) == 0
    assert "per-channel sigmas" not in capsys.readouterr().out
    channels = [sigma * 100] * 6 + [0.0, sigma * 100]
    (tmp_path / "sigmas.json").write_text(json.dumps(sigmas_document(
        [{**row, "channel_sigmas": channels}])))
    assert main(["match", "--run-dir", str(tmp_path), "--catalog", ",".join(CAT),
                 "--granularity", "filter", "--group", "2"]) == 0
    assert "tolerances from per-channel sigmas" in capsys.readouterr().out
    got = read_assignment(tmp_path)
    assert got == match_filters(read_sigmas(tmp_path), load_stats(tmp_path), cat, group=2)
    assert got.layers[0].groups[3].multiplier == "exact"
    assert got.specs() != read_assignment(tmp_path / "layer.json").specs()
