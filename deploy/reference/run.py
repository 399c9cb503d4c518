"""Run a Network on a batch with the reference backend, keeping every node's output."""
from __future__ import annotations

import numpy as np

from deploy.errors import IRError
from deploy.ir import Input
from deploy.network import Network
from deploy.reference.ops import REFERENCE


def run(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's output for the batch ``x``.

    Args:
        net: the integer network.
        x: uint8-valued integers (N, C, H, W) matching the Input node's shape.

    Returns:
        ``{node name: array}`` in execution order, the input included: uint8 (N, C, H, W) or
        (N, F) activations, int32 accumulators/logits.
    """
    inp: Input = net.input
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise IRError(f"run({net.name!r}): input expected integers, got dtype {a.dtype}")
    if a.ndim != 4 or a.shape[1:] != inp.shape:
        dims = ", ".join(map(str, inp.shape))
        raise IRError(f"run({net.name!r}): input expected shape (N, {dims}), got {a.shape}")
    if a.size and (int(a.min()) < inp.lo or int(a.max()) > inp.hi):
        raise IRError(f"run({net.name!r}): input expected values in {inp.lo}..{inp.hi}, got "
                      f"[{int(a.min())}, {int(a.max())}]")
    outs: dict[str, np.ndarray] = {inp.name: a.astype(np.uint8)}
    for node in net.nodes[1:]:
        outs[node.name] = REFERENCE(node, [outs[s] for s in node.inputs],
                                    [net.infos[s] for s in node.inputs])
    return outs
