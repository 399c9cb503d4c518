"""Firmware of layers with one multiplier per output-channel group: the SIMD kernels switch
MARLIN's CSR level (or the product table) between blocks of channels inside the layer's loop."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.cost import estimate
from deploy.emit_pulp import emit
from deploy.host import build_host, run_host
from deploy.kernels import simd_report
from deploy.rv32 import check_target, cross_compiler, csr_writes
from deploy.tiling import plan_tiling
from hwlib.blocks import Block, from_channel_specs

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
LEVELS = ["marlin:3", "marlin:100", "marlin:250", "exact", "deploytest:1"]


def _grouped(seed: int) -> deploy.Network:
    """LeNet-5 with groups of 2 output channels (1 for odd counts), random specs per group."""
    net = zoo.lenet5(seed)
    rng = np.random.default_rng(seed)
    asg = {}
    for n in net.layers:
        g = 2 if n.out_channels % 2 == 0 else 1
        specs = [str(rng.choice(LEVELS)) for _ in range(n.out_channels // g)]
        specs[:2] = ["marlin:3", "marlin:200"]  # two levels inside every layer
        asg[n.name] = from_channel_specs(specs, g)
    return deploy.with_multipliers(net, asg)


@needs_gcc
def test_grouped_lenet_matches_the_reference_and_needs_its_csr_writes(tmp_path) -> None:
    net = _grouped(5)
    x = np.random.default_rng(0).integers(0, 256, (3,) + net.input.shape, dtype=np.uint8)
    report = deploy.validate(net, x, tmp_path / "ok")
    assert report.ok and report.mismatches == 0
    conv1 = next(l for l in report.layers if l.name == "conv1")
    assert conv1.csr_word is None and "marlin:200 x 2" in conv1.multiplier
    fw = emit(net, tmp_path / "fw", reference_input=x[0])
    layer = (fw.directory / next(l.source for l in fw.layers if l.name == "conv1")).read_text()
    assert "_mul_of[6]" in layer and layer.count("NN_MUL_MARLIN") >= 2
    # without the level writes inside the loop the host's shadow CSR keeps one level: wrong
    kernels = fw.directory / "nn_kernels.c"
    text = kernels.read_text()
    assert text.count("hal_csr_write(*word);") == 1
    kernels.write_text(text.replace("hal_csr_write(*word);", ""))
    exe = build_host([fw], tmp_path / "build")
    got = run_host(exe, [fw], [x], tmp_path / "run")[0]
    ref = deploy.run(net, x)
    assert not np.array_equal(got["conv1"].astype(np.int64), ref["conv1"].astype(np.int64))


def test_cost_counts_level_writes_inside_the_layer() -> None:
    net = zoo.lenet5(0)
    specs = {n.name: "marlin:9" for n in net.layers}
    flat = deploy.with_multipliers(net, specs)
    grouped = deploy.with_multipliers(net, {**specs, "conv1": (
        Block(out=(0, 2), multiplier="marlin:9"), Block(out=(2, 4), multiplier="marlin:40"),
        Block(out=(4, 6), multiplier="marlin:9"))})
    tiling = plan_tiling(flat)
    a = {c.name: c for c in estimate(flat, tiling)}["conv1"]
    b = {c.name: c for c in estimate(grouped, plan_tiling(grouped))}["conv1"]
    cores = tiling.cores
    # levels 9, 9, 40, 40 | 9, 9: the first block of 4 mixes levels (one write per channel where
    # it changes), the second shares one; two changes per 2-pixel step (cyclically), plus the
    # route set and cleared once per core
    steps = 28 * 28 // 2
    assert b.csr_writes == 2 * cores + cores + 2 * steps
    assert a.csr_writes == 3 * cores
    assert b.compute_cycles == a.compute_cycles + cores + 2 * steps
    assert a.mult_energy_uj is not None and b.mult_energy_uj is not None
    assert a.mult_energy_uj != b.mult_energy_uj


def _kernel(seed: int) -> deploy.Network:
    """LeNet-5 with (output, input) kernel blocks: groups of 2 output channels (1 for odd counts)
    x input groups of 3 (conv2: off the 4-byte grid, one byte at a time) or 8 (fc1: SIMD
    segments), random specs per block, two levels inside every first filter's reduction."""
    net = zoo.lenet5(seed)
    rng = np.random.default_rng(seed)
    asg = {}
    for n in net.layers:
        cout, cin = n.weight.shape[:2]
        g = 2 if cout % 2 == 0 else 1
        m = 1 if cin == 1 else next(d for d in (8, 3, 2) if cin % d == 0)
        specs = [str(rng.choice(LEVELS)) for _ in range(cout // g * (cin // m))]
        specs[:2] = ["marlin:3", "marlin:200"] if cin > m else specs[:2]
        asg[n.name] = tuple(Block(out=(o * g, o * g + g), inp=(i * m, i * m + m), multiplier=s)
                            for (o, i), s in zip(np.ndindex(cout // g, cin // m), specs))
    return deploy.with_multipliers(net, asg)


@needs_gcc
def test_kernel_blocks_switch_levels_inside_a_reduction_bit_exactly(tmp_path) -> None:
    net = _kernel(7)
    conv2 = net.node("conv2")
    assert conv2.multiplier[0].inp == (0, 3) and conv2.multiplier[1].inp == (3, 6)
    x = np.random.default_rng(1).integers(0, 256, (3,) + net.input.shape, dtype=np.uint8)
    report = deploy.validate(net, x, tmp_path / "ok")
    assert report.ok and report.mismatches == 0
    fw = emit(net, tmp_path / "fw", reference_input=x[0])
    src = fw.directory / next(l.source for l in fw.layers if l.name == "conv2")
    text = src.read_text()
    cout = conv2.weight.shape[0]
    assert f"_mul_of[{cout * 2}]" in text and ".in_group = 3," in text
    assert f".mul_ld = {cout}," in text
    words = re.findall(r"NN_MUL_MARLIN, 0, 0, 0, 0, 0, (0x[0-9a-fA-F]+)u", text)
    entries = re.findall(r"^    \{ (NN_MUL_\w+).*, (0x[0-9a-fA-F]+|0)u \}", text, re.M)
    assert len(entries) == 2 * cout and len(set(words)) > 1
    assert entries[0] != entries[cout]                 # filter 0: another level per input group
    # without the level writes between segments the host's shadow CSR keeps one level: wrong
    kernels = fw.directory / "nn_kernels.c"
    kernels.write_text(kernels.read_text().replace("hal_csr_write(*word);", ""))
    got = run_host(build_host([fw], tmp_path / "build"), [fw], [x], tmp_path / "run")[0]
    ref = deploy.run(net, x)
    assert not np.array_equal(got["conv2"].astype(np.int64), ref["conv2"].astype(np.int64))


def test_cost_counts_level_writes_between_the_segments_of_a_reduction() -> None:
    net = zoo.lenet5(0)
    specs = {n.name: "marlin:9" for n in net.layers}
    cout, cin, kh, kw = net.node("conv2").weight.shape       # 16, 6, 5, 5
    kernel = deploy.with_multipliers(net, {**specs, "conv2": tuple(
        Block(out=(o, o + 4), inp=(i, i + 3), multiplier="marlin:9" if i == 0 else "marlin:40")
        for o in range(0, cout, 4) for i in (0, 3))})
    a = {c.name: c for c in estimate(deploy.with_multipliers(net, specs),
                                     plan_tiling(net))}["conv2"]
    b = {c.name: c for c in estimate(kernel, plan_tiling(kernel))}["conv2"]
    cores = plan_tiling(net).cores
    # per block of 4 channels and 2-pixel step: group 0 at level 9, group 1 at level 40, each
    # group's 25 tap segments in a row: 2 changes per block, 4 blocks
    steps = -(-(10 * 10) // 2)
    assert b.csr_writes == 2 * cores + cores + steps * 2 * 4
    assert b.compute_cycles == a.compute_cycles + cores + steps * 2 * 4
    assert a.csr_writes == 3 * cores


@pytest.mark.skipif(cross_compiler() is None, reason="riscv64-unknown-elf-gcc not installed")
def test_rv32_kernels_write_the_level_from_the_channel_table(tmp_path) -> None:
    net = _grouped(6)
    fw = emit(net, tmp_path / "fw")
    report = check_target(net, fw, tmp_path / "build")
    assert report.qemu_mismatches == (0 if shutil.which("qemu-riscv32") else None)
    assert all(c.ok and c.expected is None for c in report.layers)  # no write at layer entry
    objdump = shutil.which("riscv64-unknown-elf-objdump")
    assert objdump is not None
    dis = subprocess.run([objdump, "-d", "--no-show-raw-insn",
                          str(tmp_path / "build" / "nn_kernels.o")],
                         capture_output=True, text=True, check=True).stdout
    # the level from the channel's table entry (a register), written per block of channels by
    # the helper every conv/linear path calls, never inside a dot-product loop; the route is
    # still set and cleared once per kernel call
    writes = {f: w for f, w in csr_writes(dis, 0x7D0).items() if w}
    assert set(writes) == {"nn_block_at"} and all(v is None for v in writes["nn_block_at"])
    simd = simd_report(dis, 0x7D0, hwlib.marlin.ENABLE_SIMD)
    assert simd.enables == {"nn_conv": (1, 1), "nn_linear": (1, 1)}
    assert simd.enables_in_loops == 0 and simd.csr_in_inner_loops == 0
    assert simd.loop_dot_products == 16
