"""Target checks: CSR writes read back from rv32 disassembly, host-HAL build under qemu-riscv32."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.emit_pulp import emit
from deploy.rv32 import check_target, cross_compiler, csr_writes

LISTING = """
00000000 <n_conv1>:
   0:\tlui\ta5,0xfffc0
   4:\tadd\ta5,a5,688 # fffc02b0 <n_conv1_weight+0xfffc01c0>
   8:\tcsrw\t0x7d0,a5
   c:\tlw\ta2,8(a0)
00000010 <.L3>:
  10:\tli\ta4,-8
  12:\tmv\ta3,a4
  14:\tcsrw\t0x7d0,a3
  16:\tlw\ta3,0(a0)
  18:\tcsrw\t0x7d0,a3
0000001a <other>:
  1a:\tcsrw\t0x7c0,a5
  1e:\tcsrw\t0x7d0,zero
"""


def test_csr_writes_follows_register_constants() -> None:
    writes = csr_writes(LISTING, 0x7D0)
    assert writes == {"n_conv1": [0xFFFC02B0, 0xFFFFFFF8, None], "other": [0]}


needs_cross = pytest.mark.skipif(cross_compiler() is None,
                                 reason="riscv64-unknown-elf-gcc not installed")


@needs_cross
@pytest.mark.parametrize("make", [lambda: zoo.lenet5(21), lambda: zoo.resnet8(22),
                                  lambda: zoo.random_network(23)])
def test_disassembly_writes_each_level_once(tmp_path, make) -> None:
    net = make()
    x = np.random.default_rng(0).integers(0, 256, net.input.shape, dtype=np.uint8)
    fw = emit(net, tmp_path / "fw", reference_input=x)
    report = check_target(net, fw, tmp_path / "build")
    assert report.ok, report
    expected = {n.name: hwlib.marlin.csr_word(int(n.multiplier.split(":")[1]))
                for n in net.layers}
    assert {c.layer: c.found for c in report.layers} == {k: (v,) for k, v in expected.items()}
    # the MARLIN route: set and cleared once per kernel call, outside every loop
    assert report.simd.enables == {"nn_conv": (1, 1), "nn_linear": (1, 1)}
    assert report.simd.enables_in_loops == 0 and report.simd.csr_in_inner_loops == 0
    # the inner loop is PULP-NN's 2x4 step (unrolled twice): 16 pv.sdotusp.b, 12 loads
    assert report.simd.loop_dot_products == 16 and report.simd.ratio <= 1.5, report.simd
    assert "-march=rv32imc" in report.flags and "-mabi=ilp32" in report.flags
    if shutil.which("qemu-riscv32"):
        assert report.qemu_mismatches == 0


@needs_cross
def test_table_multiplier_layers_write_no_csr(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(3), ["deploytest:1", "exact", "marlin:77",
                                                  "deploytest:1", "marlin:0"])
    fw = emit(net, tmp_path / "fw")
    report = check_target(net, fw, tmp_path / "build")
    assert report.ok, report
    assert {c.layer: c.found for c in report.layers} == {
        "conv1": (), "conv2": (), "fc1": (hwlib.marlin.csr_word(77),), "fc2": (),
        "fc3": (hwlib.marlin.csr_word(0),)}


@needs_cross
def test_check_catches_a_wrong_or_missing_write(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(4), ["marlin:17"] * 5)
    fw = emit(net, tmp_path / "fw")
    word = f"0x{hwlib.marlin.csr_word(17):08X}u"
    conv2 = fw.directory / "layer_conv2.c"
    conv2.write_text(conv2.read_text().replace(word, f"0x{hwlib.marlin.csr_word(18):08X}u"))
    fc1 = fw.directory / "layer_fc1.c"
    fc1.write_text("\n".join(l for l in fc1.read_text().splitlines() if "hal_csr_write" not in l))
    report = check_target(net, fw, tmp_path / "build")
    bad = {c.layer: c.found for c in report.layers if not c.ok}
    assert bad == {"conv2": (hwlib.marlin.csr_word(18),), "fc1": ()}
    assert not report.ok


@needs_cross
def test_check_catches_an_enable_inside_the_dot_product_loop(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(6), ["marlin:40"] * 5)
    fw = emit(net, tmp_path / "fw")
    kernels = fw.directory / "nn_kernels.c"
    text = kernels.read_text()
    step = "uint32_t w0 = hal_load4(wr[j]), w1 = hal_load4(wr[j] + 4);"
    assert step in text
    kernels.write_text(text.replace(step, step + " hal_mac_enable();"))
    report = check_target(net, fw, tmp_path / "build")
    assert report.simd.enables_in_loops > 0 and report.simd.csr_in_inner_loops > 0
    assert not report.ok
