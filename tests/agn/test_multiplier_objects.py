"""Multiplier objects where spec strings go: layers and approximate_."""
from __future__ import annotations

import numpy as np
from torch import nn

import hwlib
from agn.layers import ApproxConv2d, approximate_


def _table(spec: str) -> hwlib.TableMultiplier:
    exact = np.arange(256)[:, None] * np.arange(-128, 128)[None, :]
    return hwlib.TableMultiplier(spec, exact, hwlib.UINT8, hwlib.INT8,
                                 hwlib.Power(mw=None, relative=0.5, source="test", proxy=True))


def test_a_registered_multiplier_object_is_accepted_by_layers_and_approximate():
    conv = ApproxConv2d(1, 2, 3)
    conv.set_multiplier(hwlib.get("marlin:7"))
    assert conv.spec == "marlin:7" and conv.multiplier is hwlib.get("marlin:7")
    model = nn.Sequential(ApproxConv2d(1, 2, 3), ApproxConv2d(2, 2, 3))
    approximate_(model, {"0": hwlib.get("marlin:3"), "1": "exact"})
    assert [m.spec for m in model] == ["marlin:3", "exact"]


def test_an_anonymous_table_object_is_adopted_by_content_when_set():
    conv = ApproxConv2d(1, 2, 3)
    table = _table("anon:0")  # hwlib cannot name 'anon:0'
    conv.set_multiplier(table)
    assert conv.spec == f"table:sha256:{table.fingerprint()}"
    np.testing.assert_array_equal(conv.multiplier.table(), table.table())
    model = nn.Sequential(ApproxConv2d(1, 2, 3), ApproxConv2d(2, 2, 3))
    approximate_(model, {"0": table, "1": "exact"})
    assert model[0].spec == conv.spec
