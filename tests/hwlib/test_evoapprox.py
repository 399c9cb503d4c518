"""The 13 signed EvoApprox v2022 circuits as BAM/TM models with their published figures."""
import csv
from pathlib import Path

import numpy as np
import pytest

import hwlib
from hwlib import evoapprox

V2022 = Path(hwlib.__file__).parent / "data" / "evoapproxlib_lite_v2022_mul8.csv"
ROWS = {r["name"]: r for r in csv.DictReader(V2022.read_text().splitlines())}
NAMES = sorted(evoapprox.SIGNED_MODELS)


def test_the_13_names_and_the_wildcard():
    assert len(NAMES) == 13
    specs = [m.spec for m in hwlib.catalog("evo:mul8s_*")]
    assert sorted(specs) == [f"evo:{n}" for n in NAMES]
    assert {n for n, r in ROWS.items() if n.startswith("mul8s")} == set(NAMES)


def _half_unit(printed: str) -> float:
    """Half a unit of the last printed digit (at least 2e-4: MAE% of 1KV8 comes from MAE 1.2)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return max(0.5 * 10.0**-decimals + 1e-12, 2e-4)


@pytest.mark.parametrize("name", NAMES)
def test_published_mae_wce_ep_and_power(name):
    m = hwlib.get(f"evo:{name}")
    row = ROWS[name]
    got = m.metrics()
    assert (m.x_domain, m.w_domain) == (hwlib.INT8, hwlib.INT8)
    # The CSV prints 2 significant digits (MAE% of the smallest circuits from an already rounded
    # MAE); the integer worst case and EP% (2 decimals) are exact.
    e = m.error_table()
    assert int(np.abs(e).max()) == int(float(row["WCE_abs"]))
    assert got["wce_pct"] == pytest.approx(float(row["WCE_pct"]), abs=_half_unit(row["WCE_pct"]))
    assert got["ep_pct"] == pytest.approx(float(row["EP_pct"]), abs=0.006)
    assert float(np.abs(e).mean()) == pytest.approx(float(row["MAE_abs"]), abs=1.0)
    assert got["mae_pct"] == pytest.approx(float(row["MAE_pct"]), abs=_half_unit(row["MAE_pct"]))
    assert got["mre_pct"] == pytest.approx(float(row["MRE_pct"]), abs=0.006)
    assert int(e.max()) == int(row["max_pos_err"]) and int(e.min()) == int(row["max_neg_err"])
    assert got["mean"] == pytest.approx(float(row["mean_err_uniform"]), abs=1e-9)
    assert got["std"] == pytest.approx(float(row["err_std_uniform"]), rel=1e-5)
    assert m.power_mw == pytest.approx(float(row["power_mW_pdk45"]))
    assert m.relative_power == pytest.approx(float(row["power_mW_pdk45"]) / 0.425)
    assert not m.power.proxy and m.power.source == "EvoApproxLib v2022 PDK45 (published)"


def test_alias_is_the_model_of_multipliers_md():
    np.testing.assert_array_equal(hwlib.get("evo:mul8s_1KX5").table(),
                                  hwlib.get("bam:v5h2").table())
    np.testing.assert_array_equal(hwlib.get("evo:mul8s_1L2N").table(), hwlib.get("tm:k3").table())
    assert hwlib.get("evo:mul8s_1KV6").is_exact
    assert hwlib.get("bam:v5h2").power == hwlib.get("evo:mul8s_1KX5").power  # same circuit
    assert hwlib.get("bam:v5h3").power.proxy


def test_catalogued_name_without_model_says_to_load_its_c_file():
    with pytest.raises(hwlib.SpecError, match=r"mul8u_1JJQ.*file:path/to/mul8u_1JJQ\.c"):
        hwlib.get("evo:mul8u_1JJQ")
    with pytest.raises(hwlib.SpecError, match="unknown EvoApprox name 'mul8x_ZZZ'"):
        hwlib.get("evo:mul8x_ZZZ")
    with pytest.raises(hwlib.SpecError, match="matches no modelled circuit"):
        hwlib.catalog("evo:mul8u_*")
