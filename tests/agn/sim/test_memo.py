"""IdentityMemo: one build per object identity, bounded; IR copies share their frozen arrays."""
from __future__ import annotations

import numpy as np
import pytest

from agn.sim.memo import IdentityMemo


def test_built_once_per_identity_and_tag():
    memo, builds = IdentityMemo(4), []
    a, b = np.arange(3), np.arange(3)  # equal, not identical

    def build(v):
        builds.append(v)
        return len(builds)

    assert memo((a,), lambda: build("a")) == memo((a,), lambda: build("again")) == 1
    assert memo((b,), lambda: build("b")) == 2
    assert memo((a,), lambda: build("tagged"), "other") == 3
    assert builds == ["a", "b", "tagged"]


def test_least_recently_used_goes_past_the_size():
    memo, objs = IdentityMemo(2), [object() for _ in range(3)]
    for i, o in enumerate(objs):
        memo((o,), lambda i=i: i)
    assert memo((objs[0],), lambda: "rebuilt") == "rebuilt"
    assert memo((objs[2],), lambda: "kept") == 2
    with pytest.raises(ValueError, match="size expected >= 1"):
        IdentityMemo(0)


def test_a_node_copied_with_a_new_multiplier_shares_its_arrays():
    import dataclasses

    from deploy.ir import Conv

    w = np.ones((2, 1, 3, 3), np.int8)
    node = Conv(name="c", input="x", weight=w, bias=np.zeros(2, np.int32),
                multiplier="exact", requant=None, padding=1)
    w[0] = 5  # the node holds its own frozen copy
    assert int(node.weight.max()) == 1 and not node.weight.flags.writeable
    copy = dataclasses.replace(node, multiplier="marlin:3")
    assert copy.weight is node.weight and copy.bias is node.bias
