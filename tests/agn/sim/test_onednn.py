"""The oneDNN uint8 x int8 kernel against float64, on the geometries it is known to get wrong."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from agn.sim import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="no oneDNN quantized conv")


@pytest.mark.parametrize("stride", [(1, 2), (2, 2), (1, 3), (2, 3)])
@pytest.mark.parametrize("groups", [1, 2])
def test_one_column_outputs_with_a_column_stride_are_exact(stride, groups):
    gen = torch.Generator().manual_seed(stride[0] * 10 + stride[1] + groups)
    checked = 0
    for (kh, kw), (py, px), h in itertools.product([(3, 2), (2, 3), (4, 4), (1, 3)],
                                                   [(0, 0), (1, 0), (2, 1)], range(1, 13)):
        if h + 2 * py < kh:
            continue
        for w in range(max(1, kw - 2 * px), kw - 2 * px + stride[1]):  # every one-column width
            x = torch.randint(0, 256, (2, 4 * groups, h, w), generator=gen, dtype=torch.uint8)
            wt = torch.randint(-128, 128, (2 * groups, 4, kh, kw), generator=gen,
                               dtype=torch.int8)
            packed = onednn.prepack(wt, stride, (py, px), groups)
            got = onednn.conv(x.contiguous(memory_format=torch.channels_last), packed,
                              2 * groups, stride, (py, px), groups)
            ref = F.conv2d(x.double(), wt.double(), stride=stride, padding=(py, px),
                           groups=groups)
            assert ref.shape[3] == 1
            assert got.shape == ref.shape and torch.equal(got.double(), ref), \
                (kh, kw, py, px, h, w)
            checked += 1
    assert checked > 100


def test_the_self_test_catches_the_one_column_fault(monkeypatch):
    assert onednn.selftest.__wrapped__().ok
    monkeypatch.setattr(onednn, "_one_column_fix", lambda *args: 0)  # the workaround undone
    result = onednn.selftest.__wrapped__()
    assert not result.ok and result.detail.startswith("case 4:")
