"""The operating-point switch read back from the rv32 objects: ``<fn>_set_point`` moves each
point's multiplier, bias and requantisation pointers and CSR 0x7D0 word into place, the layer
writes the word, and ``net_set_operating_point`` calls every switch."""
from __future__ import annotations

import re

import pytest

import hwlib
from deploy import zoo
from deploy.emit_pulp import emit
from deploy.points import PointNetwork
from deploy.rv32 import cross_compiler
from deploy.rv32_points import check_points_target

from .test_points import _points

needs_cross = pytest.mark.skipif(cross_compiler() is None,
                                 reason="riscv64-unknown-elf-gcc not installed")


def _lenet_points() -> PointNetwork:
    base = zoo.lenet5(3)
    n = len(base.layers)
    return _points(base, [["marlin:255"] * n, ["marlin:40"] * n,
                          ["deploytest:1"] + ["marlin:3"] * (n - 1)])


@needs_cross
def test_set_operating_point_switches_csr_words_and_parameter_pointers(tmp_path) -> None:
    pts = _lenet_points()
    fw = emit(pts.network, tmp_path / "fw", points=pts)
    rep = check_points_target(pts, fw, tmp_path / "build")
    assert rep.ok, rep
    assert [c.layer for c in rep.layers] == list(pts.varying())
    word = hwlib.marlin.csr_word
    first = rep.layers[0]
    assert first.found_words == (word(255), word(40), 0)     # point 2 runs a table multiplier
    assert all(c.found_words == (word(255), word(40), word(3)) for c in rep.layers[1:])
    assert all(c.csr_write and c.called for c in rep.layers)
    assert first.tables == {"bias": True, "mult": True, "shift": True}
    assert first.switched[f"{first.function}_csr_pt[i]"] == f"{first.function}_csr"
    assert "-march=rv32imc" in rep.flags and "-mabi=ilp32" in rep.flags


@needs_cross
def test_the_check_catches_a_missing_switch_and_swapped_point_tables(tmp_path) -> None:
    pts = _lenet_points()
    fw = emit(pts.network, tmp_path / "fw", points=pts)
    src = fw.directory / "layer_conv1.c"
    text = src.read_text()
    fn = "net_conv1"
    no_csr = text.replace(f"{fn}_csr = {fn}_csr_pt[i];", f"{fn}_csr = {fn}_csr_pt[0];")
    swapped = re.sub(rf"{fn}_bias_p0, {fn}_bias_p1", f"{fn}_bias_p1, {fn}_bias_p0", text)
    no_bias = text.replace(f"{fn}_params.bias = {fn}_bias_pt[i];",
                           f"{fn}_params.bias = {fn}_bias_pt[1];")
    assert len({text, no_csr, swapped, no_bias}) == 4
    for bad, broken in ((no_csr, "csr"), (swapped, "bias table"), (no_bias, "bias switch")):
        src.write_text(bad)
        rep = check_points_target(pts, fw, tmp_path / f"build_{broken.replace(' ', '_')}")
        conv1 = rep.layers[0]
        assert not rep.ok and not conv1.ok and all(c.ok for c in rep.layers[1:]), broken
        if broken == "bias table":
            assert conv1.tables["bias"] is False
        else:
            assert f"{fn}_{broken.split()[0]}_pt[i]" not in conv1.switched
