"""The SIMD kernels: pv.sdotusp.b's encoding, its host emulation against the scalar products, and
the reading of loops and enables from a disassembly."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import deploy
import hwlib
from deploy.kernels import encode_sdotusp_b, im2col_bytes, simd_report
from deploy.render import render_to
from deploy.target import default_target

LISTING = """
00000000 <nn_conv>:
   0:\tcsrsi\t0x7d0,4
   4:\tjal\t0 <nn_conv_body>
   8:\tcsrci\t0x7d0,4
00000010 <nn_block>:
  10:\tlw\ta6,0(a1)
  12:\t.4byte\t0xa8c59557
  16:\tadd\ta1,a1,4
  18:\tbne\ta1,a0,10 <nn_block+0x0>
  1c:\tlbu\ta5,0(a2)
  1e:\t.4byte\t0xa8c59557
  22:\tcsrsi\t0x7d0,4
  24:\tbne\ta2,a3,1c <nn_block+0xc>
  28:\tj\t10 <nn_block>
"""


def test_encoding_follows_the_pulp_isa_fields() -> None:
    # funct7 1010100 | rs2 | rs1 | funct3 001 | rd | opcode 1010111
    assert encode_sdotusp_b(10, 11, 12) == 0b1010100_01100_01011_001_01010_1010111 == 0xA8C59557
    with pytest.raises(ValueError, match="rs2 expected a register 0..31, got 32"):
        encode_sdotusp_b(1, 2, 32)
    assert [im2col_bytes(k) for k in (1, 4, 9, 27)] == [8, 8, 24, 56]


def test_simd_report_finds_the_inner_loop_and_misplaced_enables() -> None:
    r = simd_report(LISTING, 0x7D0, 4)
    # innermost loops: [10, 18] and [1c, 24]; the outer one [10, 28] holds both
    assert (r.function, r.loop_instructions, r.loop_dot_products) == ("nn_block", 4, 1)
    assert r.enables == {"nn_conv": (1, 1), "nn_block": (1, 0)}
    assert r.enables_in_loops == 1 and r.csr_in_inner_loops == 1
    assert r.per_mac == 1.0 and r.pulp_nn_per_mac == 14 / 32
    with pytest.raises(ValueError, match="no loop of the disassembly holds a pv.sdotusp.b"):
        simd_report(LISTING.replace("0xa8c59557", "0x00000013"), 0x7D0, 4)


HARNESS = r"""
#include <stdio.h>
#include "marlin_hal.h"
int main(void)
{
    unsigned x, w, level, enable;
    int acc;
    while (scanf("%u %u %d %u %u", &x, &w, &acc, &level, &enable) == 5) {
        hal_csr_write((0x3FFFu << 18) | ((~level & 0xFFu) << 3));
        if (enable)
            hal_mac_enable();
        printf("%d\n", (int)hal_sdotusp(acc, x, w));
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_host_emulation_matches_the_scalar_products(tmp_path) -> None:
    t = default_target()
    render_to(tmp_path / "marlin_hal.h", "marlin_hal.h.j2", platform=t.platform,
              num_cores=t.num_cores, l1_bytes=t.l1_bytes, csr=f"0x{t.csr_address:X}",
              enable_bits=t.csr_enable_bits)
    render_to(tmp_path / "marlin_hal.c", "marlin_hal.c.j2", num_cores=t.num_cores)
    (tmp_path / "harness.c").write_text(HARNESS)
    exe = tmp_path / "harness"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-std=c11", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{tmp_path}", "-o", str(exe),
                    str(tmp_path / "harness.c"), str(tmp_path / "marlin_hal.c")], check=True)
    rng = np.random.default_rng(15)
    n = 4000
    x = rng.integers(0, 256, (n, 4))
    w = rng.integers(-128, 128, (n, 4))
    x[rng.random((n, 4)) < 0.15] = 0                    # zero operands: MARLIN's exact 0
    w[rng.random((n, 4)) < 0.15] = 0
    acc = rng.integers(-2**20, 2**20, n)
    level = rng.integers(0, 256, n)
    level[:4] = (0, 255, 15, 128)
    enable = rng.integers(0, 2, n)
    xw = (x.astype(np.uint32) << (8 * np.arange(4, dtype=np.uint32))).sum(axis=1)
    ww = ((w & 0xFF).astype(np.uint32) << (8 * np.arange(4, dtype=np.uint32))).sum(axis=1)
    lines = "".join(f"{a} {b} {c} {d} {e}\n" for a, b, c, d, e in zip(xw, ww, acc, level, enable))
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True)
    got = np.array(out.stdout.split(), dtype=np.int64)
    want = np.array([a + sum(int(hwlib.marlin.approx(np.int64(xi), np.int64(wi), int(lv))) if en
                             else int(xi) * int(wi) for xi, wi in zip(xr, wr))
                     for xr, wr, a, lv, en in zip(x, w, acc, level, enable)])
    np.testing.assert_array_equal(got, want)
    assert enable.sum() > 1000 and (want != acc + (x * w).sum(axis=1)).any()


def _leftover_net(multiplier: str) -> deploy.Network:
    """Every leftover of the 2 x 4 SIMD step: 5 = 4 + 1 output channels, k = 27 (one 8-byte and
    one 4-byte step, 3 bytes one at a time), odd output widths, a padded 1x1 conv (patches read in
    place and gathered), depthwise (k = 9, one channel per group), a 6-input linear of 6 = 4 + 2
    neurons with int32 outputs."""
    rng = np.random.default_rng(27)

    def rq(n: int) -> deploy.Requant:
        return deploy.Requant([1 << 12] * n, [16] * n)

    def w(*shape: int) -> np.ndarray:
        return rng.integers(-128, 128, shape).astype(np.int8)

    x = deploy.Input(name="x", shape=(3, 9, 7), scale=1.0, zero_point=5, mean=None, std=None)
    nodes = (
        x,
        deploy.Conv(name="c27", input="x", weight=w(5, 3, 3, 3), bias=rng.integers(-99, 99, 5),
                    multiplier=multiplier, requant=rq(5), stride=(2, 1), padding=(1, 1, 0, 2)),
        deploy.Conv(name="pw", input="c27", weight=w(6, 5, 1, 1), bias=[3] * 6,
                    multiplier=multiplier, requant=rq(6), padding=(1, 0, 1, 1)),
        deploy.Conv(name="dw", input="pw", weight=w(6, 1, 3, 3), bias=[0] * 6,
                    multiplier=multiplier, requant=rq(6), padding=1, groups=6),
        deploy.GlobalAvgPool(name="gap", input="dw", requant=rq(6)),
        deploy.Flatten(name="f", input="gap"),
        deploy.Linear(name="fc", input="f", weight=w(6, 6), bias=rng.integers(-99, 99, 6),
                      multiplier=multiplier, requant=None),
    )
    return deploy.Network(nodes, name=f"leftovers_{multiplier.replace(':', '_')}")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_simd_leftovers_match_the_reference_sanitized(tmp_path) -> None:
    nets = [_leftover_net(m) for m in ("marlin:77", "exact", "deploytest:1")]
    xs = [np.random.default_rng(i).integers(0, 256, (2, 3, 9, 7), dtype=np.uint8)
          for i in range(len(nets))]
    for rep in deploy.validate_many(nets, xs, [tmp_path / n.name for n in nets], sanitize=True):
        assert rep.ok, {l.name: l.first_mismatch for l in rep.layers if l.mismatches}
