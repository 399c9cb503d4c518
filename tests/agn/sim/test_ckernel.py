"""The compiled feature kernel and its torch fallback: both bit-exact, fallback when it must."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hwlib
from agn.sim import approx_conv2d, ckernel, clear_cache, features, plan, reference_conv2d

# (N, C, H, W, Cout, (kh, kw), stride, padding, groups, channels-last input)
GEOMETRIES = [
    (2, 4, 7, 6, 6, (3, 3), 1, 1, 1, False),
    (1, 6, 9, 9, 6, (3, 3), 2, (1, 0), 6, False),       # depthwise, stride 2
    (3, 6, 5, 8, 4, (1, 3), (1, 2), (0, 2), 2, True),   # grouped, odd kernel
    (2, 3, 11, 7, 5, (5, 5), 1, 2, 1, True),            # 3 channels padded to 4
    (1, 40, 4, 5, 3, (3, 3), 1, 1, 1, False),           # 40 channels: the 64-byte vectors
    (2, 20, 5, 4, 3, (1, 1), 1, 0, 1, False),           # 20 channels: the 32-byte vectors
]
SPECS = ["marlin:0", "marlin:15", "marlin:127", "marlin:200", "marlin:255", "evo:mul8s_1KVM"]


@pytest.fixture(autouse=True)
def fresh_kernel():
    """Each test loads the kernel afresh under its own environment, and leaves no state behind."""
    ckernel.reset()
    clear_cache()
    yield
    ckernel.reset()
    clear_cache()


@pytest.fixture
def count_builds(monkeypatch):
    calls = []
    real = ckernel.build

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ckernel, "build", spy)
    return calls


def _check_layers(assert_exact) -> None:
    gen = torch.Generator().manual_seed(4)
    for i, (n, c, h, wd, cout, k, stride, padding, groups, cl) in enumerate(GEOMETRIES):
        for j, spec in enumerate(SPECS):
            m = hwlib.get(spec)
            xd = m.network_x_domain()
            x = torch.randint(xd.lo, xd.hi + 1, (n, c, h, wd), generator=gen, dtype=torch.uint8)
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            w = torch.randint(-128, 128, (cout, c // groups, *k), generator=gen, dtype=torch.int8)
            zp = (xd.lo, 3, xd.hi)[(i + j) % 3]
            ref = reference_conv2d(x, w, m, stride, padding, groups, zp)
            got = approx_conv2d(x, w, m, stride, padding, groups, zp, kernel="onednn-u8s8")
            assert_exact(got, ref, f"{spec} geometry {i}")


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("mode", ["c", "torch"])
def test_both_feature_builders_are_exact(mode, monkeypatch, count_builds, assert_exact):
    monkeypatch.setenv(ckernel.ENV, mode)
    _check_layers(assert_exact)
    assert (len(count_builds) > 0) == (mode == "c")


@pytest.mark.usefixtures("c_compiler")
def test_sliced_channels_through_the_compiled_kernel(monkeypatch, count_builds, assert_exact):
    monkeypatch.setenv(ckernel.ENV, "c")
    m = hwlib.get("marlin:255")
    gen = torch.Generator().manual_seed(1)
    w = torch.randint(-128, -120, (2, 200, 3, 3), generator=gen, dtype=torch.int8)
    x = torch.randint(200, 256, (1, 200, 4, 4), generator=gen, dtype=torch.uint8)
    assert plan(m, w).slices > 1
    got = approx_conv2d(x, w, m, padding=1, zero_point=250)
    assert len(count_builds) == plan(m, w).slices  # one build per channel slice
    assert_exact(got, reference_conv2d(x, w, m, padding=1, zero_point=250))


@pytest.mark.usefixtures("c_compiler")
def test_compiled_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ckernel.library() is not None
    assert str(tmp_path) in ckernel.status()
    built = list((tmp_path / "agn-toolkit" / "ckernels").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"  # no temporary files left behind
    ckernel.reset()

    def no_compile(*args):
        raise AssertionError("compiled again instead of loading the cached library")

    monkeypatch.setattr(ckernel, "_compile", no_compile)
    assert ckernel.library() is not None


def test_no_compiler_falls_back_to_torch(tmp_path, monkeypatch, count_builds, assert_exact):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang
    assert ckernel.library() is None
    assert ckernel.status().startswith("torch fallback: C model: no C compiler found")
    _check_layers(assert_exact)
    assert not count_builds
    monkeypatch.setenv(ckernel.ENV, "c")
    with pytest.raises(ckernel.FeatureKernelError, match="unavailable: torch fallback"):
        approx_conv2d(torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 1, 1), "marlin:15")


@pytest.mark.usefixtures("c_compiler")
def test_failing_compiler_falls_back_to_torch(tmp_path, monkeypatch):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", str(fake))
    assert ckernel.library() is None
    assert "does not compile the feature kernel" in ckernel.status()
    assert "cc: broken" in ckernel.status()


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("good, bad", [
    ("if (op.plus_x) f += v;", "if (op.plus_x) f -= v;"),  # the per-term rows
    ("f += (s & l->plus)", "f -= (s & l->plus)"),  # the per-pixel shuffles
    ("b[k + 1] ^= t, b[k] ^= t << 8;", "b[k + 1] ^= t;"),  # the 8 x 8 transposes
])
def test_a_wrong_kernel_is_caught_by_the_self_check(good, bad, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert ckernel.SOURCE.count(good) == 1
    monkeypatch.setattr(ckernel, "SOURCE", ckernel.SOURCE.replace(good, bad))
    assert ckernel.library() is None
    assert "disagrees with the torch features" in ckernel.status()


@pytest.mark.usefixtures("c_compiler")
def test_the_workspace_is_reused_within_a_thread():
    assert ckernel.library() is not None, ckernel.status()
    packed = ckernel.pack(features.feature_ops(np.arange(256)[None], 0, torch.uint8))
    assert packed is not None
    x = torch.randint(0, 256, (2, 1, 4, 5, 5), dtype=torch.uint8)
    a = ckernel.build(x, packed, 4, (1, 1), 0, 0, reuse=True).clone()
    b = ckernel.build(x, packed, 4, (1, 1), 0, 0, reuse=True)
    assert b.data_ptr() == ckernel.build(x, packed, 4, (1, 1), 0, 0, reuse=True).data_ptr()
    assert torch.equal(a, b)
    assert ckernel.build(x, packed, 4, (1, 1), 0, 0).data_ptr() != b.data_ptr()
    clear_cache()  # releases the workspace
    assert getattr(ckernel._WORKSPACE, "buffer", None) is None


def test_unknown_mode_is_an_error(monkeypatch):
    monkeypatch.setenv(ckernel.ENV, "fast")
    with pytest.raises(ValueError, match="AGN_FEATURE_KERNEL: expected one of"):
        ckernel.mode()


@pytest.mark.usefixtures("c_compiler")
@pytest.mark.parametrize("prepared, ran", [("c", "torch"), ("torch", "c")])
def test_a_kernel_prepared_for_one_builder_runs_on_the_other(prepared, ran, monkeypatch,
                                                              assert_exact):
    """Channel widths differ (3 as it is, or padded to 4): either builder handles either."""
    gen = torch.Generator().manual_seed(9)
    x = torch.randint(0, 256, (2, 3, 6, 7), generator=gen, dtype=torch.uint8)
    w = torch.randint(-128, 128, (4, 3, 3, 3), generator=gen, dtype=torch.int8)
    ref = reference_conv2d(x, w, "marlin:127", padding=1, zero_point=4)
    monkeypatch.setenv(ckernel.ENV, prepared)
    approx_conv2d(x, w, "marlin:127", padding=1, zero_point=4)
    monkeypatch.setenv(ckernel.ENV, ran)
    assert_exact(approx_conv2d(x, w, "marlin:127", padding=1, zero_point=4), ref, ran)
