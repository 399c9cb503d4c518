"""Spec strings: round trips, wildcards, comma lists and the errors a user sees."""
import numpy as np
import pytest

import hwlib
from hwlib.errors import SpecError, TableError

SPECS = ["exact", "marlin:0", "marlin:128", "bam:v5h2", "bam:v5h2u", "bam:v5h2u:raw", "tm:k3",
         "tm:k2u", "trunc:k4", "trunc:k4c", "trunc:k4c:raw", "perf:m2s0", "perf:m2s0:raw",
         "drum:k6", "drum:k6:raw", "mitchell:8", "mitchell:8:raw", "roba:8", "roup:r4p1",
         "roup:r4p1u", "roup:r4p1u:raw", "evo:mul8s_1L2N", "evo:mul8s_1KV6"]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trips(spec):
    m = hwlib.get(spec)
    assert m.spec == spec
    assert hwlib.get(m.spec) is m
    assert hwlib.get(m) is m
    t = m.table()
    assert t.dtype == np.int64 and t.shape == (m.x_domain.size, m.w_domain.size)
    x, w = m.x_domain.values()[5], m.w_domain.values()[-3:]
    np.testing.assert_array_equal(m(x, w), t[5, -3:])  # broadcasting, row = x - lo
    assert set(m.metrics()) == {"mae_pct", "wce_pct", "mre_pct", "ep_pct", "mse", "mean", "std"}
    assert m.power.relative == m.relative_power and m.power.source


def test_unknown_family_lists_known_families():
    with pytest.raises(SpecError, match=r"unknown family 'foo'.*bam.*drum.*marlin.*trunc"):
        hwlib.get("foo:1")
    with pytest.raises(SpecError, match="known families"):
        hwlib.get("nonsense")
    with pytest.raises(SpecError, match="expected a string"):
        hwlib.get(3)


@pytest.mark.parametrize("spec,msg", [
    ("bam:v5", r"expected an argument like 'bam:v5h2', got 'v5'"),
    ("bam:v16h2", r"parameter v=16 outside 0\.\.15"),
    ("tm:k9", r"parameter k=9 outside 0\.\.8"),
    ("trunc:4", r"like 'trunc:k4'"),
    ("perf:m5s4", r"parameter m=5 outside 1\.\.4"),
    ("drum:k0", r"parameter k=0 outside 1\.\.8"),
    ("mitchell:16", r"like 'mitchell:8'"),
    ("roup:r4p4", r"parameter p=4 outside 0\.\.3"),
    ("marlin:300", r"level 300 is outside MARLIN's levels 0\.\.255"),
    ("marlin:007", r"write the level as a plain decimal number \('marlin:7'\), got '007'"),
    ("marlin:x", r"expected a level 0\.\.255 after 'marlin:'"),
    ("bam:v5h2:raw", r"not a sign-magnitude network form"),
    ("bam:*", "wildcard"),
])
def test_bad_specs_name_the_problem(spec, msg):
    with pytest.raises(SpecError, match=msg):
        hwlib.get(spec)


def test_catalog_wildcards_and_lists():
    assert [m.spec for m in hwlib.catalog("marlin:*")] == [f"marlin:{i}" for i in range(256)]
    assert [m.spec for m in hwlib.catalog("exact, bam:v5h2,marlin:3")] == [
        "exact", "bam:v5h2", "marlin:3"]
    assert [m.spec for m in hwlib.catalog("bam:v*h6")] == [f"bam:v{v}h6" for v in range(12)]
    assert len(hwlib.catalog("bam:*")) == 84
    assert [m.spec for m in hwlib.catalog("trunc:k[12]*")] == [
        "trunc:k1", "trunc:k1c", "trunc:k2", "trunc:k2c"]
    assert [m.spec for m in hwlib.catalog(["tm:*", "drum:k7"])] == [
        "tm:k1", "tm:k2", "tm:k3", "tm:k4", "tm:k5", "tm:k6", "drum:k7"]
    assert len(hwlib.catalog("perf:*")) == 16 and len(hwlib.catalog("roup:*")) == 20
    with pytest.raises(SpecError, match="matches nothing in the bam grid"):
        hwlib.catalog("bam:x*")
    with pytest.raises(SpecError, match="has no wildcard"):
        hwlib.catalog("mitchell:*")
    with pytest.raises(SpecError, match="empty entry"):
        hwlib.catalog("exact,,marlin:1")


def test_table_multiplier_refuses_wrong_shape_and_dtype():
    with pytest.raises(TableError, match=r"expected shape \(256, 256\).*got \(256, 10\)"):
        hwlib.TableMultiplier("t", np.zeros((256, 10), np.int64), hwlib.UINT8, hwlib.INT8,
                              hwlib.get("exact").power)
    with pytest.raises(TableError, match="integer dtype, got float64"):
        hwlib.TableMultiplier("t", np.zeros((256, 256)), hwlib.UINT8, hwlib.INT8,
                              hwlib.get("exact").power)


def test_operands_outside_domain_or_not_integer_are_refused():
    m = hwlib.get("bam:v5h2")
    with pytest.raises(hwlib.DomainError, match=r"value 200 outside its domain int8"):
        m(np.array([200]), np.array([1]))
    with pytest.raises(hwlib.DomainError, match="integer array, got dtype float64"):
        m(np.array([1.0]), np.array([1]))


def test_non_canonical_spec_shares_the_canonical_instance():
    m = hwlib.get("bam:v05h2")
    assert m.spec == "bam:v5h2" and m is hwlib.get("bam:v5h2")


def test_metrics_are_cached_but_returned_as_copies():
    m = hwlib.get("tm:k2")
    first = m.metrics()
    first["std"] = -1.0
    assert m.metrics()["std"] == pytest.approx(195.505, abs=1e-3)


@pytest.mark.parametrize("spec", SPECS)
def test_call_broadcasts_and_agrees_with_the_table(spec):
    m = hwlib.get(spec)
    rng = np.random.default_rng(3)
    x = rng.integers(m.x_domain.lo, m.x_domain.hi + 1, (5, 1, 3)).astype(np.int16)
    w = rng.integers(m.w_domain.lo, m.w_domain.hi + 1, (4, 1)).astype(np.int32)
    got = m(x, w)
    assert got.dtype == np.int64 and got.shape == (5, 4, 3)
    np.testing.assert_array_equal(got, m.table()[x - m.x_domain.lo, w - m.w_domain.lo])


def test_fingerprint_identifies_the_table_not_the_name():
    assert hwlib.get("evo:mul8s_1KX5").fingerprint() == hwlib.get("bam:v5h2").fingerprint()
    assert hwlib.get("bam:v5h2").fingerprint() != hwlib.get("bam:v5h3").fingerprint()
    assert hwlib.get("tm:k0").fingerprint() == hwlib.get("evo:mul8s_1KV6").fingerprint()
    assert hwlib.get("exact").fingerprint() != hwlib.get("evo:mul8s_1KV6").fingerprint()  # domains
    assert len(hwlib.get("marlin:0").fingerprint()) == 64
