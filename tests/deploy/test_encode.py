"""Float inputs encoded by the network's own Input node; schema-1 networks still load."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import deploy
from deploy import zoo
from deploy.errors import IRError

SCHEMA1 = Path(__file__).parent / "data" / "schema1"  # written by deploy before schema 2


def _with_input(net: deploy.Network, **fields) -> deploy.Network:
    nodes = (dataclasses.replace(net.input, **fields),) + net.nodes[1:]
    return deploy.Network(nodes, name=net.name)


def test_encode_applies_normalisation_and_quantisation_in_float32() -> None:
    net = _with_input(zoo.lenet5(0), mean=(0.1307,), std=(0.3081,), scale=0.0125, zero_point=30,
                      lo=3, hi=250)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-1, 2, (4, 1, 32, 32)), np.full((1, 1, 32, 32), 0.1307),
                        np.full((1, 1, 32, 32), 1e6), np.full((1, 1, 32, 32), -1e6)])
    q = deploy.encode_inputs(net, x)
    x32 = x.astype(np.float32)
    expected = np.clip(np.round((x32 - np.float32(0.1307)) / np.float32(0.3081)
                                / np.float32(0.0125)) + 30, 3, 250)
    assert q.dtype == np.uint8 and q.shape == x.shape
    assert np.array_equal(q, expected.astype(np.uint8))
    assert (q[4] == 30).all() and (q[5] == 250).all() and (q[6] == 3).all()
    deploy.run(net, q)  # the codes are inside the network's input range


def test_encode_refuses_bad_inputs() -> None:
    net = zoo.lenet5(0)
    with pytest.raises(IRError, match=r"x expected shape \(N, 1, 32, 32\), got \(1, 32, 32\)"):
        deploy.encode_inputs(net, np.zeros((1, 32, 32)))
    x = np.zeros((2, 1, 32, 32))
    x[1, 0, 3, 4] = np.nan
    with pytest.raises(IRError, match=r"x expected finite values, got nan at index "
                                      r"\(1, 0, 3, 4\)"):
        deploy.encode_inputs(net, x)
    with pytest.raises(IRError, match="x expected real numbers, got dtype <U1"):
        deploy.encode_inputs(net, np.full((1, 1, 32, 32), "a"))


def test_schema1_network_loads_and_refuses_encoding(tmp_path) -> None:
    assert json.loads((SCHEMA1 / "network.json").read_text())["schema_version"] == 1
    net = deploy.load(SCHEMA1)
    assert net.schema_version == deploy.SCHEMA_VERSION == 3
    assert net.input.mean is None and net.input.std is None
    assert net == _with_input(zoo.random_network(7, name="v1net"), mean=None, std=None)
    with pytest.raises(IRError, match="records no float normalisation .*predates input "
                                      "encoding"):
        deploy.encode_inputs(net, np.zeros((1,) + net.input.shape))
    deploy.save(net, tmp_path)  # saved again: schema 2 (no block-wise layer), without encoding
    again = json.loads((tmp_path / "network.json").read_text())
    assert again["schema_version"] == 2 and again["nodes"][0]["mean"] is None
    assert deploy.load(tmp_path) == net


def test_unknown_schema_version_is_refused(tmp_path) -> None:
    shutil.copytree(SCHEMA1, tmp_path / "n")
    path = tmp_path / "n" / "network.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "schema_version": 9}))
    with pytest.raises(IRError, match=r"schema_version 9 is not supported \(expected 3 or an "
                                      r"earlier one: \[1, 2\]\)"):
        deploy.load(path)


def test_network_json_without_hash_is_refused(tmp_path) -> None:
    deploy.save(zoo.lenet5(0), tmp_path / "a")
    deploy.save(zoo.lenet5(1), tmp_path / "b")
    path = tmp_path / "a" / "network.json"
    doc = json.loads(path.read_text())
    del doc["tensors"]["sha256"]
    path.write_text(json.dumps(doc))
    (tmp_path / "a" / "network.npz").write_bytes((tmp_path / "b" / "network.npz").read_bytes())
    with pytest.raises(IRError, match="no 'tensors'.*'sha256'.*cannot be verified"):
        deploy.load(tmp_path / "a")
    del doc["tensors"]
    path.write_text(json.dumps(doc))
    with pytest.raises(IRError, match="cannot be verified"):
        deploy.load(tmp_path / "a")
