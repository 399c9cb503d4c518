"""An anonymous multiplier table (a TableMultiplier built from an array, which hwlib cannot name)
travels with the exported network: stored with the weights under its content hash, so the NumPy
reference, the torch engine and the firmware of another process use the same table."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import deploy
import hwlib
from agn.export import export
from agn.intsim import run_integer
from agn.layers import approx_layers, calibrate, set_mode
from agn.models import build_model
from deploy.errors import IRError
from deploy.serialize import from_json_and_arrays, to_json_and_arrays


def _anonymous_table() -> hwlib.TableMultiplier:
    """MARLIN level 9 with a few products changed: a circuit no spec names."""
    base = hwlib.get("marlin:9")
    table = base.table().copy()
    table[100:140, 30:60] += 37
    return hwlib.TableMultiplier("my-circuit", table, base.x_domain, base.w_domain, base.power)


def _network(mult: hwlib.Multiplier) -> tuple[deploy.Network, np.ndarray]:
    torch.manual_seed(0)
    model = build_model("lenet5", 1, 8, num_classes=3)
    x = torch.rand(16, 1, 8, 8)
    calibrate(model, [x], 1)
    layers = approx_layers(model)
    layers[0][1].set_multiplier(mult)
    layers[1][1].set_multiplier("marlin:20")
    set_mode(model, "approx")
    net = export(model, (1, 8, 8), "anon")
    return net, model.quant_in.to_int(x).to(torch.uint8).numpy()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_anonymous_table_round_trip_reference_engine_and_firmware(tmp_path):
    mult = _anonymous_table()
    net, x = _network(mult)
    spec = net.layers[0].multiplier
    assert spec == f"table:sha256:{mult.fingerprint()}"
    ref = deploy.run(net, x)
    fast = run_integer(net, x, keep=True)
    for name, want in ref.items():  # reference == torch engine, every node
        np.testing.assert_array_equal(fast[name].numpy(), want.astype(np.int64), err_msg=name)
    deploy.save(net, tmp_path / "net")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "logits.npy", ref[net.nodes[-1].name])

    # a fresh process knows no anonymous table: the network carries it
    script = textwrap.dedent(f"""
        import json, numpy as np, deploy, hwlib
        try:
            hwlib.get({spec!r})
        except hwlib.SpecError:
            pass
        else:
            raise SystemExit("the table was known before loading")
        net = deploy.load({str(tmp_path / "net")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        logits = deploy.run(net, x)[net.nodes[-1].name]
        assert np.array_equal(logits, np.load({str(tmp_path / "logits.npy")!r}))
        report = deploy.validate(net, x[:4], {str(tmp_path / "fw")!r})
        print(json.dumps({{"mismatches": report.mismatches, "ok": report.ok,
                          "table": hwlib.get({spec!r}).fingerprint()}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"mismatches": 0, "ok": True, "table": mult.fingerprint()}
    assert any("sha256" in p.name for p in (tmp_path / "fw" / "firmware").rglob("*.c"))


def test_a_stored_table_that_does_not_match_its_hash_is_refused():
    net, _ = _network(_anonymous_table())
    doc, arrays = to_json_and_arrays(net)
    key = next(k for k in arrays if k.endswith(".table"))
    arrays[key] = arrays[key].copy()
    arrays[key][0, 0] += 1
    with pytest.raises(IRError, match="hashes to .*corrupt"):
        from_json_and_arrays(doc, arrays)
    with pytest.raises(hwlib.SpecError, match="anonymous table not known in this process"):
        hwlib.get("table:sha256:" + "0" * 64)
