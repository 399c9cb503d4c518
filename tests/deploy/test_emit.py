"""The C emitter: files, one CSR level write per MARLIN layer with its word, table multipliers."""
from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import deploy
import hwlib
from deploy import zoo
from deploy.emit_pulp import emit

CSR_WRITE = re.compile(r"hal_csr_write\((0x[0-9A-F]{8})u\);")


def csr_writes(firmware_dir: Path) -> dict[str, list[int]]:
    """Every ``hal_csr_write`` in the generated sources, per file."""
    return {p.name: [int(w, 16) for w in CSR_WRITE.findall(p.read_text())]
            for p in sorted(firmware_dir.glob("*.c"))}


@pytest.mark.parametrize("make", [lambda: zoo.lenet5(3), lambda: zoo.resnet8(4),
                                  lambda: zoo.random_network(5)])
def test_one_level_write_per_marlin_layer_with_its_word(tmp_path, make) -> None:
    net = make()
    fw = emit(net, tmp_path)
    writes = csr_writes(tmp_path)
    expected = {}
    for layer in net.layers:
        level = int(layer.multiplier.split(":")[1])
        expected[f"layer_{layer.name}.c"] = [hwlib.marlin.csr_word(level)]
    assert {k: v for k, v in writes.items() if v} == expected
    # The write is the first statement of the layer function, which every core runs.
    for layer in net.layers:
        src = (tmp_path / f"layer_{layer.name}.c").read_text()
        body = src.split(f"void {fw.prefix}_{layer.name}(void *arg)\n{{\n", 1)[1]
        assert body.lstrip().startswith("hal_csr_write(")
    emitted = {l.name: l.csr_word for l in fw.layers if l.csr_word is not None}
    assert emitted == {n: expected[f"layer_{n}.c"][0] for n in net.multipliers()}


def test_enable_bits_set_once_around_each_kernel_call(tmp_path) -> None:
    emit(zoo.lenet5(0), tmp_path)
    kernels = (tmp_path / "nn_kernels.c").read_text()
    for kernel, args in (("nn_conv", "const nn_conv_t *p"), ("nn_linear", "const nn_linear_t *p")):
        body = kernels.split(f"void {kernel}({args}, const uint8_t *in, void *out)\n{{\n", 1)[1]
        lines = [l.strip() for l in body.split("}", 1)[0].strip().splitlines()]
        assert lines == ["nn_route_on(&p->mul);", f"{kernel}_body(p, in, out);",
                         "nn_route_off(&p->mul);"]
        assert f"static __attribute__((noinline)) void {kernel}_body(" in kernels
    assert kernels.count("hal_mac_enable();") == kernels.count("hal_mac_disable();") == 1
    route = kernels.split("static void nn_route_on(const nn_mul_t *m)\n{\n", 1)[1]
    assert route.split("}", 1)[0].split() == ["if", "(m->kind", "==", "NN_MUL_MARLIN)",
                                              "hal_mac_enable();"]
    hal = (tmp_path / "marlin_hal.h").read_text()
    assert '"csrw 0x7D0, %0"' in hal and '"csrs 0x7D0, 4"' in hal and '"csrc 0x7D0, 4"' in hal
    assert '".insn r 0x57, 1, 0x54, %0, %1, %2"' in hal        # pv.sdotusp.b
    assert "p.mac" not in hal.replace("(bit 1)", "")
    for name in ("main.c", "network.c", "Makefile"):
        assert (tmp_path / name).is_file()
    assert "include $(RULES_DIR)/pmsis_rules.mk" in (tmp_path / "Makefile").read_text()
    assert "pmsis_kickoff((void *)entry)" in (tmp_path / "main.c").read_text()


def test_marlin_level_words_match_hwlib() -> None:
    assert hwlib.marlin.csr_word(0) == 0xFFFC07F8 and hwlib.marlin.csr_word(255) == 0xFFFC0000
    assert deploy.target.default_target().csr_address == hwlib.marlin.CSR_ADDRESS


def test_non_marlin_layers_read_a_generated_table_inline(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(1), ["deploytest:2", "exact", "marlin:9",
                                                  "deploytest:2", "exact"])
    emit(net, tmp_path, prefix="lut")
    writes = csr_writes(tmp_path)
    assert {k: v for k, v in writes.items() if v} == {"layer_fc1.c": [hwlib.marlin.csr_word(9)]}
    header = (tmp_path / "mul0_deploytest_2.h").read_text()
    assert "not a MARLIN level, so layers using it write no CSR" in header
    assert "from hwlib's 256 x 256 table" in header.replace("\n * ", " ")
    assert "one row of products per weight value (row: weight -128..127" in header.replace(
        "\n * ", " ")
    conv1 = (tmp_path / "layer_conv1.c").read_text()
    assert ".mul = { NN_MUL_TABLE, lut_mul0_deploytest_2_table, 0, 0, -128, 256 }" in conv1
    assert ".mul = { NN_MUL_EXACT, 0, 0, 0, 0, 0 }" in (tmp_path / "layer_conv2.c").read_text()
    assert ".mul = { NN_MUL_MARLIN, 0, 0, 0, 0, 0 }" in (tmp_path / "layer_fc1.c").read_text()
    table = hwlib.get("deploytest:2").table().T        # rows: weights, columns: activations
    body = (tmp_path / "mul0_deploytest_2.c").read_text().split("= {", 1)[1].split("};")[0]
    values = [int(v) for v in re.findall(r"-?\d+", body)]
    assert values == table.ravel().tolist()
    assert len(list(tmp_path.glob("mul*.c"))) == 1          # one table per distinct spec


def test_stale_layer_files_are_removed(tmp_path) -> None:
    emit(zoo.lenet5(0), tmp_path)
    assert (tmp_path / "layer_fc1.c").exists()
    emit(zoo.resnet8(0), tmp_path)
    assert not (tmp_path / "layer_fc1.c").exists()
    assert (tmp_path / "layer_block3_add.c").exists()


def test_emit_refuses_bad_arguments_before_writing(tmp_path) -> None:
    with pytest.raises(deploy.IRError, match="expected a C identifier of 1..32 characters, got "
                                             "'1net'"):
        emit(zoo.lenet5(0), tmp_path / "a", prefix="1net")
    with pytest.raises(deploy.IRError, match=r"reference_input expected shape \(1, 32, 32\), got "
                                             r"\(32, 32\)"):
        emit(zoo.lenet5(0), tmp_path / "b", reference_input=np.zeros((32, 32), np.uint8))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_c_names_are_unique_identifiers(tmp_path) -> None:
    x = deploy.Input(name="in put", shape=(1, 2, 2), scale=1.0, zero_point=0, mean=None,
                     std=None)
    net = deploy.Network((x, deploy.Flatten(name="layer1.0", input="in put"),
                          deploy.Linear(name="layer1_0", input="layer1.0", weight=[[1, 2, 3, 4]],
                                        bias=[0], multiplier="marlin:3", requant=None)))
    fw = emit(net, tmp_path)
    assert [l.fn for l in fw.layers] == ["", "net_layer1_0", "net_layer1_0_2"]
    assert (tmp_path / "layer_layer1_0_2.c").exists()


def test_pmsis_build_type_checks_against_an_sdk_stub(tmp_path) -> None:
    net = deploy.with_multipliers(zoo.lenet5(2), ["marlin:5", "deploytest:0", "exact",
                                                  "marlin:200", "marlin:0"])
    fw = emit(net, tmp_path)
    stub = Path(__file__).parent / "pmsis_stub"
    sources = [str(tmp_path / s) for s in ("main.c", *fw.sources, "input_data.c",
                                           "marlin_hal.c", "nn_kernels.c")]
    proc = subprocess.run(
        ["gcc", "-fsyntax-only", "-Wall", "-Werror", "-std=c11", "-DNUM_CORES=8",
         "-DMARLIN_TARGET", "-DMARLIN_PMSIS", f"-I{stub}", *sources],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_memory_footprint_counts_buffers_and_parameters(tmp_path) -> None:
    net = zoo.lenet5(0)
    fw = emit(net, tmp_path)
    buffers = sum(net.infos[n.name].size * (4 if net.infos[n.name].dtype == "int32" else 1)
                  for n in net.nodes)
    assert fw.plan.unplanned_bytes == buffers == (1024 + 4704 + 1176 + 1600 + 400 + 400 + 120
                                                  + 84 + 40)
    # One arena reused by liveness: conv1 (4704) + pool1 (1176) is the largest live pair.
    assert fw.activation_bytes == fw.plan.arena_bytes == fw.plan.live_peak_bytes == 4704 + 1176
    network_c = (tmp_path / "network.c").read_text()
    assert "static uint8_t net_arena[5880]" in network_c and "net_buf_" not in network_c
    params = sum(n.weight.size + 4 * n.bias.size + 5 * n.out_channels for n in net.layers[:-1])
    params += net.layers[-1].weight.size + 4 * 10                       # logits
    assert fw.parameter_bytes == params              # tiled convs keep their im2col in L1
    assert "_col[" not in (tmp_path / "layer_conv1.c").read_text()
    tiny = dataclasses.replace(deploy.default_target(), l1_bytes=8 * 64)  # no conv tile fits
    fw = emit(net, tmp_path / "tiny", target=tiny)
    assert not fw.tiling.layer("conv1").tiled
    # im2col (two 4-byte aligned columns) x 8 cores in L2
    assert fw.parameter_bytes == params + 8 * (2 * 28 + 2 * 152)
    assert "net_conv1_col[NUM_CORES * 56]" in (tmp_path / "tiny" / "layer_conv1.c").read_text()
