"""The torch integer executor: a backend of the IR op protocol, bit-exact with the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import deploy
from agn.intsim import TORCH, run_integer
from deploy import zoo
from deploy.errors import BackendError
from deploy.ir import Requantize


def test_registers_every_op_type() -> None:
    assert TORCH.missing() == []


def test_standalone_requantize_leaves_its_input_intact() -> None:
    net = zoo.random_network(7)      # conv0 (int32 accumulators) -> conv0_rq (Requantize)
    rq = [n for n in net.nodes if isinstance(n, Requantize)]
    assert rq and net.infos[rq[0].input].dtype == "int32"
    x = np.random.default_rng(0).integers(0, 256, (3,) + net.input.shape, dtype=np.uint8)
    ref = deploy.run(net, x)
    fast = run_integer(net, x, keep=True)
    for name in ref:
        assert np.array_equal(ref[name].astype(np.int64), fast[name].numpy().astype(np.int64)), \
            f"node {name} differs from the reference"


def test_missing_registration_names_the_torch_backend() -> None:
    class Unknown(Requantize):
        pass

    net = zoo.random_network(7)
    nodes = tuple(Unknown(name=n.name, input=n.input, requant=n.requant)
                  if isinstance(n, Requantize) else n for n in net.nodes)
    odd = deploy.Network(nodes, name="odd")
    with pytest.raises(BackendError, match="the torch integer executor has no implementation "
                                           "for node type Unknown"):
        run_integer(odd, torch.zeros((1,) + net.input.shape, dtype=torch.uint8))
