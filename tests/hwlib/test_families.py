"""Closed-form families bit for bit against per-pair references, and against the computed CSV."""
import csv
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import hwlib
from hwlib.signmag import SignMagnitude

from . import reference as ref

# uniform-input statistics of closed-form families (copied from the shared reference set)
CSV_FAMILIES = Path(__file__).with_name("data") / "closed_form_families_8bit_computed.csv"

# spec -> per-pair reference of the multiplier hwlib.get(spec) returns (its own domains)
CHEAP = {  # exhaustive over all pairs with the Python loop
    "tm:k1": partial(ref.tm, k=1), "tm:k3": partial(ref.tm, k=3),
    "tm:k2u:raw": partial(ref.tm, k=2),
    "perf:m2s0:raw": partial(ref.perf, m=2, s=0), "perf:m3s4:raw": partial(ref.perf, m=3, s=4),
    "perf:m2s1": ref.sign_magnitude(partial(ref.perf, m=2, s=1)),
    "drum:k4:raw": partial(ref.drum, k=4), "drum:k6": ref.sign_magnitude(partial(ref.drum, k=6)),
    "mitchell:8:raw": ref.mitchell, "mitchell:8": ref.sign_magnitude(ref.mitchell),
    "roba:8:raw": ref.roba, "roba:8": ref.sign_magnitude(ref.roba),
    "roup:r4p1": partial(ref.roup, r=4, p=1), "roup:r2p2u:raw": partial(ref.roup, r=2, p=2),
    "roup:r3p1u": ref.sign_magnitude(partial(ref.roup, r=3, p=1)),
}
BITWISE = {  # 64 bit pairs per product: Python loop on a random sample, definition vectorised
    "bam:v5h2": partial(ref.bam, v=5, h=2, signed=True),
    "bam:v3h3": partial(ref.bam, v=3, h=3, signed=True),
    "bam:v9h6": partial(ref.bam, v=9, h=6, signed=True),
    "bam:v4h1u:raw": partial(ref.bam, v=4, h=1, signed=False),
    "bam:v6h2u": ref.sign_magnitude(partial(ref.bam, v=6, h=2, signed=False)),
    "trunc:k4:raw": partial(ref.trunc, k=4, comp=False),
    "trunc:k5c:raw": partial(ref.trunc, k=5, comp=True),
    "trunc:k8c": ref.sign_magnitude(partial(ref.trunc, k=8, comp=True)),
    "trunc:k3": ref.sign_magnitude(partial(ref.trunc, k=3, comp=False)),
}


@pytest.mark.parametrize("spec", sorted(CHEAP))
def test_family_exhaustively_against_per_pair_reference(spec):
    m = hwlib.get(spec)
    want = ref.table(CHEAP[spec], m.x_domain.values(), m.w_domain.values())
    np.testing.assert_array_equal(m.table(), want)


def _vectorised_pp_sum(xs, ws, keep, signed, constant=0):
    """The partial-product definition, one (i, j) at a time over the whole table."""
    a, b = (xs[:, None] & 0xFF), (ws[None, :] & 0xFF)
    out = np.full((xs.size, ws.size), constant, np.int64)
    for i in range(8):
        for j in range(8):
            if keep(i, j):
                w = -1 if signed and ((i == 7) != (j == 7)) else 1
                out += w * ((a >> i) & 1) * ((b >> j) & 1) << (i + j)
    return out


@pytest.mark.parametrize("spec", sorted(BITWISE))
def test_bitwise_family_on_random_pairs_and_exhaustively(spec):
    m = hwlib.get(spec)
    rng = np.random.default_rng(7)
    xs = rng.integers(m.x_domain.lo, m.x_domain.hi + 1, 600)
    ws = rng.integers(m.w_domain.lo, m.w_domain.hi + 1, 600)
    edges_x = [m.x_domain.lo, m.x_domain.hi, 0, 1]
    edges_w = [m.w_domain.lo, m.w_domain.hi, 0, 1, -1 if m.w_domain.lo < 0 else 2]
    xs = np.concatenate([xs, np.repeat(edges_x, len(edges_w))])
    ws = np.concatenate([ws, np.tile(edges_w, len(edges_x))])
    want = [ref_val for ref_val in map(BITWISE[spec], xs.tolist(), ws.tolist())]
    np.testing.assert_array_equal(m(xs, ws), want)


@pytest.mark.parametrize("spec,keep,signed,const", [
    ("bam:v5h2", lambda i, j: i >= 2 and i + j >= 5, True, 0),
    ("bam:v6h6", lambda i, j: i >= 6 and i + j >= 6, True, 0),
    ("bam:v4h1u:raw", lambda i, j: i >= 1 and i + j >= 4, False, 0),
    ("tm:k2", lambda i, j: i >= 2 and j >= 2, True, 0),
    ("trunc:k6c:raw", lambda i, j: i + j >= 6, False, 80),  # round(321 / 4)
    ("perf:m2s3:raw", lambda i, j: not 3 <= j < 5, False, 0),
])
def test_partial_product_arrays_exhaustively_against_definition(spec, keep, signed, const):
    m = hwlib.get(spec)
    want = _vectorised_pp_sum(m.x_domain.values(), m.w_domain.values(), keep, signed, const)
    np.testing.assert_array_equal(m.table(), want)


def _csv_spec(family: str, params: str) -> str:
    if family == "TRUNCcol":
        k, c = re.fullmatch(r"k(\d+)(_comp)?", params).groups()
        return f"trunc:k{k}{'c' if c else ''}:raw"
    if family in ("BAM", "BAMsigned"):
        v, h = re.fullmatch(r"v(\d+)_h(\d+)", params).groups()
        return f"bam:v{v}h{h}" + ("u:raw" if family == "BAM" else "")
    if family == "PERF":
        s, m = re.fullmatch(r"s(\d+)_m(\d+)", params).groups()
        return f"perf:m{m}s{s}:raw"
    if family == "ROUPlike":
        p, r = re.fullmatch(r"P(\d)_R(\d)", params).groups()
        return f"roup:r{r}p{p}u:raw"
    return {"OPTRUNC": f"tm:{params}u:raw", "OPTRUNCsigned": f"tm:{params}",
            "OPTRUNCsigned_Aonly": f"bam:v0h{params[1:]}",  # truncating A only = BAM rows
            "DRUM": f"drum:{params}:raw", "MITCHELL": "mitchell:8:raw"}[family]


def _csv_rows():
    with open(CSV_FAMILIES, newline="") as fh:
        return list(csv.DictReader(fh))


CSV_ROWS = _csv_rows()


def test_csv_lists_the_families_we_check():
    assert len(CSV_ROWS) == 221
    assert {r["family"] for r in CSV_ROWS} == {
        "TRUNCcol", "BAM", "PERF", "OPTRUNC", "DRUM", "MITCHELL", "ROUPlike", "BAMsigned",
        "OPTRUNCsigned", "OPTRUNCsigned_Aonly"}


@pytest.mark.parametrize("family", sorted({r["family"] for r in CSV_ROWS}))
def test_metrics_reproduce_computed_csv(family):
    cols = [("mae_pct", "MAE_pct"), ("wce_pct", "WCE_pct"), ("mre_pct", "MRE_pct"),
            ("ep_pct", "EP_pct"), ("mean", "mean_err"), ("std", "err_std")]
    for row in (r for r in CSV_ROWS if r["family"] == family):
        m = hwlib.get(_csv_spec(family, row["params"]))
        got = m.metrics()
        for key, col in cols:
            assert got[key] == pytest.approx(float(row[col]), rel=2e-5, abs=1e-6), (m.spec, key)
        if row["kept_pp"] and hasattr(m, "kept_partial_products"):
            assert m.kept_partial_products == int(row["kept_pp"]), m.spec


def test_sign_magnitude_adapter():
    m = hwlib.get("drum:k4")
    assert isinstance(m, SignMagnitude)
    assert (m.x_domain, m.w_domain) == (hwlib.UINT8, hwlib.INT8)
    assert m.circuit.spec == "drum:k4:raw" and hwlib.get("drum:k4:raw") is m.circuit
    xs, ws = np.arange(256), np.arange(-128, 128)
    t = m.table()
    np.testing.assert_array_equal(t[:, 128:], m.circuit.table()[:, :128])  # w >= 0
    np.testing.assert_array_equal(t[:, :128], -m.circuit.table()[:, 128:0:-1])  # w < 0: -c(x,|w|)
    assert int(m(np.array(200), np.array(-128))) == -int(m.circuit(np.array(200), np.array(128)))
    np.testing.assert_array_equal(m.exact_table(), xs[:, None] * ws[None, :])
    # w = 0 is positive zero: the compensated truncation keeps its constant there
    assert int(hwlib.get("trunc:k4c")(np.array(5), np.array(0))) == 12
    with pytest.raises(hwlib.SpecError, match="uint8 x uint8"):
        SignMagnitude(hwlib.get("bam:v5h2"), "x")


def test_unsigned_circuit_refuses_negative_weight():
    with pytest.raises(hwlib.DomainError, match="-3.*uint8"):
        hwlib.get("trunc:k4:raw")(np.array([1]), np.array([-3]))


@pytest.mark.parametrize("spec", ["bam:v5h2", "bam:v0h3", "bam:v9h0", "bam:v15h8", "bam:v5h2u",
                                  "bam:v3h1u:raw", "tm:k1", "tm:k3", "tm:k7u", "tm:k5u:raw",
                                  "trunc:k1", "trunc:k4c", "trunc:k8c", "trunc:k12c:raw",
                                  "perf:m2s0", "perf:m1s7", "perf:m4s4", "perf:m3s2:raw",
                                  "evo:mul8s_1L2N", "evo:mul8s_1KV8", "exact"])
def test_factors_exact_and_in_documented_ranges(spec):
    m = hwlib.get(spec)
    f = m.factors()
    np.testing.assert_array_equal(f.error_table(), m.error_table())
    assert f.f.shape == (f.rank, m.x_domain.size) and f.g.shape == (f.rank, m.w_domain.size)
    assert 0 <= f.f_range[0] and f.f_range[1] <= 255
    assert -128 <= f.g_range[0] and f.g_range[1] <= 128
    assert f.rank <= 10


def test_factor_ranks_are_small():
    ranks = {s: hwlib.get(s).factors().rank for s in
             ("bam:v5h2", "tm:k3", "trunc:k4", "trunc:k4c", "perf:m2s0", "perf:m4s4")}
    assert ranks == {"bam:v5h2": 4, "tm:k3": 3, "trunc:k4": 4, "trunc:k4c": 5,
                     "perf:m2s0": 1, "perf:m4s4": 2}


def test_families_without_low_rank_form_have_no_factors():
    for spec in ("drum:k6", "mitchell:8", "drum:k4:raw"):
        assert hwlib.get(spec).factors() is None


@pytest.mark.parametrize("spec,rank", [("roba:8", 1), ("roba:8:raw", 1), ("roup:r4p1", 2),
                                       ("roup:r3p0", 1), ("roup:r0p0", 0), ("roup:r2p2u", 2),
                                       ("roup:r1p3u:raw", 2)])
def test_residue_factors_of_roba_and_roup(spec, rank):
    m = hwlib.get(spec)
    f = m.factors()
    np.testing.assert_array_equal(f.error_table(), m.error_table())
    assert f.rank == rank


def test_network_x_domain():
    assert hwlib.get("bam:v5h2").network_x_domain().lo == 0
    assert hwlib.get("bam:v5h2").network_x_domain().hi == 127
    assert hwlib.get("trunc:k4").network_x_domain().hi == 255
    assert hwlib.get("marlin:3").network_x_domain().hi == 255


def test_proxy_power_is_labelled_and_computed_from_kept_partial_products():
    m = hwlib.get("trunc:k4")  # keeps 54 of 64
    assert m.power.proxy and m.power_mw is None
    assert m.relative_power == pytest.approx(1.24 * 54 / 64 - 0.19)
    assert "proxy" in m.power.label
    assert hwlib.get("mitchell:8").power.proxy
    assert hwlib.get("drum:k6").relative_power == pytest.approx(1.24 * 36 / 64 - 0.19)
