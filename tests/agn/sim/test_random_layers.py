"""Many random layers: every engine path agrees with the brute-force reference (Hypothesis)."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hwlib
from agn.sim import UnsafePathError, approx_conv2d, reference_conv2d


@st.composite
def layers(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    cg = draw(st.integers(1, 5))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    py, px = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * py), 7))
    w = draw(st.integers(max(1, kw - 2 * px), 7))
    return dict(n=draw(st.integers(1, 2)), c=groups * cg, cout=groups * og, k=(kh, kw),
                h=h, w=w, stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                padding=(py, px), groups=groups, seed=draw(st.integers(0, 2**16)))


MULTIPLIERS = [f"marlin:{lv}" for lv in (5, 77, 130, 254)] + ["evo:mul8s_1KVM", "evo:mul8s_1L2L"]


@settings(max_examples=25, deadline=None)
@given(layer=layers(), spec=st.sampled_from(MULTIPLIERS), zp_frac=st.floats(0, 1),
       path=st.sampled_from([None, "gather"]),
       kernel=st.sampled_from([None, "onednn-u8s8", "float32", "float64"]))
def test_random_layers_match_the_reference(layer, spec, zp_frac, path, kernel):
    m = hwlib.get(spec)
    xd = m.network_x_domain()
    gen = torch.Generator().manual_seed(layer["seed"])
    x = torch.randint(xd.lo, xd.hi + 1, (layer["n"], layer["c"], layer["h"], layer["w"]),
                      generator=gen, dtype=torch.uint8)
    w = torch.randint(-128, 128, (layer["cout"], layer["c"] // layer["groups"], *layer["k"]),
                      generator=gen, dtype=torch.int8)
    zp = xd.lo + int(zp_frac * (xd.hi - xd.lo))
    geo = dict(stride=layer["stride"], padding=layer["padding"], groups=layer["groups"],
               zero_point=zp)
    ref = reference_conv2d(x, w, m, **geo)
    try:
        got = approx_conv2d(x, w, m, path=path, kernel=kernel, **geo)
    except UnsafePathError:
        assert path == "gather" and kernel == "onednn-u8s8"  # the only combination that can't be
        return
    bad = int((got.long() != ref).sum())
    assert bad == 0, f"{bad} of {ref.numel()} accumulators differ ({spec}, {layer})"
